"""Spectral feature matching: amplitude spectra of activations (seed 003's blog-post form)."""

from __future__ import annotations

import torch


def amplitude_spectrum(features: torch.Tensor) -> torch.Tensor:
    """``|rfft2|`` of ``B×C×H×W`` activations over the spatial axes (orthonormal scaling)."""
    if features.dtype not in (torch.float32, torch.float64):
        features = features.float()  # the FFT needs full precision under mixed precision
    return torch.fft.rfft2(features, norm="ortho").abs()


def spectral_pair_loss(
    student_features: torch.Tensor, teacher_features: torch.Tensor
) -> torch.Tensor:
    """Teacher-vs-student form: mean squared difference of the amplitude spectra,
    ``mean ‖ |F(φ_T)| − |F(φ_S)| ‖²`` (channels must agree; adapt them first if they do not)."""
    if student_features.shape != teacher_features.shape:
        raise ValueError(
            f"spectral_pair_loss: shapes differ {tuple(student_features.shape)} vs "
            f"{tuple(teacher_features.shape)}; add a 1×1 adapter"
        )
    return (
        (amplitude_spectrum(student_features) - amplitude_spectrum(teacher_features)).pow(2).mean()
    )


def spectral_stat_loss(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Statistics form: squared distance between the batch-mean amplitude spectrum of
    ``features`` and a reference spectrum (``C×H×(W//2+1)``, e.g. from a stats file)."""
    amp = amplitude_spectrum(features).mean(0)
    if amp.shape != reference.shape:
        raise ValueError(
            f"spectral_stat_loss: spectrum {tuple(amp.shape)} vs reference {tuple(reference.shape)}"
        )
    return (amp - reference.to(amp.device)).pow(2).mean()
