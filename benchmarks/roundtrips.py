"""Round trips per call in steady state, counted from pymongo's command events: before the answer
(the call itself) and in all (then publishing the events it committed, as its function does once it
has answered: wallet_lambda.after_answer)."""

from __future__ import annotations

from dataclasses import dataclass

from wallet_service import WalletService, committed_events

from .events import MemorySink
from .monitor import CommandRecorder
from .scenarios import create_due_holds, expiry_cutoff, prepare

WARM_UP = 3  # calls before measuring: the first ones open connections and sessions
SAMPLES = 5  # measured calls per operation; steady state means they all send the same commands


@dataclass(frozen=True, slots=True)
class RoundTrips:
    operation: str
    per_call: float  # before the answer: the most any sample needed; per hold for expiry
    commands: tuple[str, ...]  # the commands of that sample, in order
    steady: bool  # every sample sent the same commands
    publishing: float = 0.0  # then publishing what the call committed: the most any sample needed
    publishing_commands: tuple[str, ...] = ()

    @property
    def in_all(self) -> float:
        return self.per_call + self.publishing


def measure_operation(service: WalletService, recorder: CommandRecorder, operation: str, tag: str) -> RoundTrips:
    call = prepare(service, operation, tag, WARM_UP + SAMPLES).call
    sink = MemorySink()
    for _ in range(WARM_UP):
        with committed_events() as committed:
            call()
        service.publish_events(sink, committed=committed)
    samples, published = [], []
    for _ in range(SAMPLES):
        recorder.arm()
        try:
            with committed_events() as committed:
                call()  # a caller's retry after a Conflict would show as a longer sample
        finally:
            samples.append(tuple(recorder.disarm()))
        recorder.arm()
        try:
            service.publish_events(sink, committed=committed)
        finally:
            published.append(tuple(recorder.disarm()))
    worst, worst_publishing = max(samples, key=len), max(published, key=len)
    return RoundTrips(operation, len(worst), worst, len(set(samples)) == 1, len(worst_publishing), worst_publishing)


def measure_expiry(service: WalletService, recorder: CommandRecorder, tag: str, holds: int = 100) -> RoundTrips:
    """Round trips per hold of one expire_reservations(batch_size=holds) call over `holds` due holds,
    then of publishing the events it committed."""
    create_due_holds(service, f"{tag}-warm-up", holds=10, wallets=2)
    warm_up = service.expire_reservations(now=expiry_cutoff(), batch_size=holds)
    if warm_up.expired != 10:
        raise RuntimeError(f"expiry warm-up expired {warm_up.expired} of 10 holds: {warm_up}")
    create_due_holds(service, tag, holds=holds, wallets=5)
    service.publish_events(MemorySink(), older_than_seconds=0)  # the holds' own events: not the expiry's
    recorder.arm()
    try:
        with committed_events() as committed:
            report = service.expire_reservations(now=expiry_cutoff(), batch_size=holds)
    finally:
        commands = tuple(recorder.disarm())
    if report.expired != holds:
        raise RuntimeError(f"expiry expired {report.expired} of {holds} holds: {report}")
    recorder.arm()
    try:
        service.publish_events(MemorySink(), committed=committed)
    finally:
        publishing = tuple(recorder.disarm())
    return RoundTrips("expire_reservations", len(commands) / holds, commands, True, len(publishing) / holds, publishing)
