"""Files: safe tensor and state files (``files``), model cards (``cards``), run folders
(``runs``) and image grids (``images``)."""
