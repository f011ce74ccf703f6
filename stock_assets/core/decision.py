"""The deploy rule: the measured test accuracy against a threshold, then against production.

Pure: the production model's score comes in as a :class:`Champion`, computed by the caller.
"""

from __future__ import annotations

from stock_assets.core.values import METRIC_DIGITS, Champion, Decision, TrainedModel


def check_accuracy_threshold(threshold: float) -> float:
    """``threshold`` if it is a share of correct predictions, in [0, 1]."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"accuracy_threshold={threshold} must lie in [0, 1]")
    return threshold


def decide(
    model: TrainedModel,
    accuracy_threshold: float,
    champion: Champion,
    challenge_production: bool = True,
) -> Decision:
    """Deploy when the test accuracy meets the threshold and, if asked, beats production.

    Production is beaten only by a strictly higher accuracy on the same test window, both at
    the precision metrics are stored with (:data:`METRIC_DIGITS`). With no production model, or
    one that could not be scored, only the threshold decides.
    """
    accuracy = float(model.metrics["accuracy"])
    passes_threshold = accuracy >= accuracy_threshold
    reasons = [
        f"test accuracy {accuracy:.4f} {'meets' if passes_threshold else 'is below'} "
        f"the threshold {accuracy_threshold:.4f}"
    ]
    beats_champion = True
    if challenge_production and champion.accuracy is not None:
        beats_champion = accuracy > round(champion.accuracy, METRIC_DIGITS)
        reasons.append(
            f"{'beats' if beats_champion else 'does not beat'} production version "
            f"{champion.version} ({champion.accuracy:.4f}) on the same test window"
        )
    elif not challenge_production:
        reasons.append("champion/challenger is off")
    elif champion.note:
        reasons.append(champion.note)
    return Decision(
        deploy=passes_threshold and beats_champion,
        passes_threshold=passes_threshold,
        accuracy=accuracy,
        baseline_accuracy=float(model.metrics["baseline_accuracy"]),
        accuracy_threshold=accuracy_threshold,
        champion_version=champion.version,
        champion_accuracy=champion.accuracy,
        reason="; ".join(reasons),
        model_type=model.model_type,
        model_uri=model.model_uri,
        registered_version=model.registered_version,
    )
