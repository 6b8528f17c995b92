"""Shards per operation on a sharded cluster, from the simulated router (devtools/shard_router.py):
one steady-state call of each operation, its commands as pymongo sent them, grouped into its
transactions; how many shards its largest transaction reached (more than one: a two-phase commit)
and how many its commands reached in all, reads outside a transaction included."""

from __future__ import annotations

from dataclasses import dataclass

from devtools.shard_router import Router, route
from wallet_service import WalletService

from .monitor import CommandRecorder
from .scenarios import prepare

SHARDS = 4  # the simulated cluster's shards, zones of whole bucket ranges


@dataclass(frozen=True, slots=True)
class ShardUse:
    operation: str
    transactions: int
    most_in_a_transaction: int  # shards of the transaction that reached the most
    reached: int  # shards any of its commands reached


def measure_shards(service: WalletService, recorder: CommandRecorder, operation: str, tag: str) -> ShardUse:
    call = prepare(service, operation, tag, 2).call
    call()  # the first call opens connections and sessions
    recorder.capture()
    try:
        call()
    finally:
        sent = recorder.captured()
    units = route(Router(SHARDS), [(command.name, command.command) for command in sent])
    transactions = [unit for unit in units if unit.transaction]
    return ShardUse(
        operation,
        len(transactions),
        max((len(unit.shards) for unit in transactions), default=0),
        len(set().union(*(unit.shards for unit in units))),
    )
