"""The farm broker: one ZeroMQ ROUTER socket in front of the durable store.

zguide patterns: Paranoid Pirate (heartbeats both ways, workers re-register after silence) and
Titanic (all state in SQLite; a restarted broker carries on from the same file).

Parts, one role each:
  loop.py           `Broker`: life cycle, the single-threaded loop, group commit, exports
  inbox.py          parse and check each message, route it to its handler in a savepoint
  workers.py        worker sessions: READY, heartbeats, liveness, what each worker runs
  tasks.py          render tasks: TASK out to idle workers, RESULT back, expired leases
  streamed.py       streamed results (FILE_CHUNK) of workers without shared storage
  clients.py        SUBMIT, STATUS, CANCEL, RETRY
  submit_checks.py  checks on a SUBMIT from the network
  captions.py       the caption queue's messages
  router.py         the ROUTER socket: local token, CURVE keys or open; bind
  gate.py           who may connect (the ZAP handler) and the local token file
"""
from .loop import Broker

__all__ = ["Broker"]
