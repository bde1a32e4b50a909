"""Which method to run on a teacher: the one recommendation that ``dfkd distill`` without a
method (``method: auto``), ``dfkd audit`` and ``dfkd describe`` give, from what can be known
before distilling — BatchNorm or not, a statistics file or not, what the audit suspects — and
the committed benchmark that supports it."""

from __future__ import annotations

from dataclasses import dataclass

#: the method name that asks for the recommendation
AUTO = "auto"
#: the committed results each recommendation rests on
ZOO = "benchmarks/results/zoo_distill.md"
NO_STATS = "benchmarks/results/zoo_distill_nostats_5m.md"
NT = "benchmarks/results/nt_teachers.md"
BACKDOOR = "benchmarks/results/backdoor.md"


@dataclass(frozen=True)
class Recommendation:
    """A method, the plug-ins to add (``--plugin`` specs) and why, in one line."""

    method: str
    plugins: tuple[str, ...]
    why: str

    def command(self) -> str:
        """``dfkd distill METHOD --plugin ...``."""
        return " ".join(["dfkd distill", self.method, *(f"--plugin {p}" for p in self.plugins)])


def recommend(
    batchnorm: bool,
    stats_file: bool,
    non_transferable: bool = False,
    backdoor: bool = False,
) -> Recommendation:
    """The recommended method for a teacher with (``batchnorm``) or without BatchNorm, with or
    without a statistics file, and with what its audit suspects."""
    if non_transferable:
        return Recommendation(
            "dfq", ("atesc",),
            f"robustness signs of a non-transferable teacher: dfq with the atesc escape ({NT})",
        )  # fmt: skip
    if backdoor:
        return Recommendation(
            "dfq", ("trigger_filter:mode=both",),
            "the trigger scan suspects a backdoor: dfq with trigger_filter (mode both), the one "
            f"setting that halved a backdoor's success rate ({BACKDOOR})",
        )  # fmt: skip
    if batchnorm:
        why = "a BatchNorm teacher: fast, matching the BatchNorm statistics"
    elif stats_file:
        why = "no BatchNorm, a statistics file: fast, matching the file"
    else:
        return Recommendation(
            "deepinversion", (),
            "no BatchNorm and no statistics file: deepinversion in its statistics-free form "
            "(pixels started from procedural images, three quarters of each replay fresh "
            f"procedural images), the best of every method on each of six BN-free teachers "
            f"({NO_STATS}); a statistics file, where one can be had, gains more",
        )  # fmt: skip
    close = "best or within 1.2 points of the best on every zoo teacher"
    return Recommendation("fast", (), f"{why} ({close}, {ZOO})")
