"""Round trips per call in steady state, counted from pymongo's command events."""

from __future__ import annotations

from dataclasses import dataclass

from wallet_service import WalletService

from .monitor import CommandRecorder
from .scenarios import create_due_holds, expiry_cutoff, prepare

WARM_UP = 3  # calls before measuring: the first ones open connections and sessions
SAMPLES = 5  # measured calls per operation; steady state means they all send the same commands


@dataclass(frozen=True, slots=True)
class RoundTrips:
    operation: str
    per_call: float  # the most any sample needed; per hold for expiry
    commands: tuple[str, ...]  # the commands of that sample, in order
    steady: bool  # every sample sent the same commands


def measure_operation(service: WalletService, recorder: CommandRecorder, operation: str, tag: str) -> RoundTrips:
    call = prepare(service, operation, tag, WARM_UP + SAMPLES).call
    for _ in range(WARM_UP):
        call()
    samples = []
    for _ in range(SAMPLES):
        recorder.arm()
        try:
            call()  # a caller's retry after a Conflict would show as a longer sample
        finally:
            samples.append(tuple(recorder.disarm()))
    worst = max(samples, key=len)
    return RoundTrips(operation, len(worst), worst, len(set(samples)) == 1)


def measure_expiry(service: WalletService, recorder: CommandRecorder, tag: str, holds: int = 100) -> RoundTrips:
    """Round trips per hold of one expire_reservations(batch_size=holds) call over `holds` due holds."""
    create_due_holds(service, f"{tag}-warm-up", holds=10, wallets=2)
    warm_up = service.expire_reservations(now=expiry_cutoff(), batch_size=holds)
    if warm_up.expired != 10:
        raise RuntimeError(f"expiry warm-up expired {warm_up.expired} of 10 holds: {warm_up}")
    create_due_holds(service, tag, holds=holds, wallets=5)
    recorder.arm()
    try:
        report = service.expire_reservations(now=expiry_cutoff(), batch_size=holds)
    finally:
        commands = tuple(recorder.disarm())
    if report.expired != holds:
        raise RuntimeError(f"expiry expired {report.expired} of {holds} holds: {report}")
    return RoundTrips("expire_reservations", len(commands) / holds, commands, True)
