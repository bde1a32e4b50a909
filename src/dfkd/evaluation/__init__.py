"""Evaluation: accuracy and agreement (``metrics``), OOD domains and triggers (``domains``),
and what a model does on them (``ood``)."""
