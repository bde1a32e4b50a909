"""Teachers: training ordinary and non-transferable teachers, taps and feature statistics,
adversarial probes, and the data-free audit."""
