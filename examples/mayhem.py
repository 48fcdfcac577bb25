"""mayhem: a small asyncio service to line-profile, which runs until it is told to stop.

A publisher puts simulated messages ("please restart this host") on a
queue at random short intervals. A consumer hands each message to its own
task, which restarts the host, saves the message and keeps extending the
message's deadline, all at once, then acknowledges it. Some restarts and
saves fail on purpose, and now and then a message is poison: its task dies,
and the event loop's exception handler reports it. SIGINT, SIGTERM or
SIGHUP shut the service down gracefully: outstanding tasks are cancelled
and awaited, then the loop stops.

Profile it for five seconds, then read the profile::

    timeout -s INT 5s kernprof -l examples/mayhem.py
    python -m lineprof mayhem.py.lprof

``--uvloop`` (or ``MAYHEM_UVLOOP=1``) runs it on uvloop when that is
installed; ``--duration S`` makes it stop by itself after S seconds.
``MAYHEM_SEED`` (default 0) seeds every random choice: the publisher's
pauses depend on the seed alone (see :func:`publish_delays`), and each
message's fate on the seed and the message's id, so two runs with one seed
publish, fail and succeed alike, whatever the timing. Standard library only.
"""

import argparse
import asyncio
import logging
import os
import random
import signal
import string
import sys
from dataclasses import dataclass, field
from typing import Iterator, Optional

try:
    profile  # noqa: B018 - injected into builtins by kernprof -l
except NameError:
    def profile(func):
        return func

log = logging.getLogger("mayhem")

#: How often a message's deadline is pushed back while it is being handled (s).
EXTEND_EVERY = 0.2
#: How long acknowledging a message takes (s).
ACK_TIME = 0.05
#: The chances of the simulated failures.
RESTART_FAILS = 0.2
SAVE_FAILS = 0.1
POISON = 0.05


class RestartFailed(Exception):
    """The simulated host did not come back."""


class SaveFailed(Exception):
    """The simulated database refused the message."""


class PoisonMessage(Exception):
    """A message that kills the task handling it: the loop's exception handler sees it."""


@dataclass
class Message:
    """One pub/sub message asking for a host restart."""

    instance_name: str
    message_id: str
    seed: int = 0
    hostname: str = field(init=False)
    restarted: bool = False
    saved: bool = False
    acked: bool = False
    extended: int = 0
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.hostname = f"{self.instance_name}.example.net"
        # The message's own random stream: its fate does not depend on timing.
        self.rng = random.Random(f"{self.seed}:{self.message_id}")


def publish_delays(seed: int) -> Iterator[float]:
    """Yield the publisher's pauses between messages, in seconds (0.05 to 0.2, ms precision).

    They depend on ``seed`` alone, so a test can add up the pauses of a run.
    """
    rng = random.Random(f"{seed}:publish")
    while True:
        yield round(rng.uniform(0.05, 0.2), 3)


@profile
async def publish(queue: asyncio.Queue, seed: int) -> None:
    """Put a new message on ``queue`` after every pause of :func:`publish_delays`, forever."""
    names = random.Random(f"{seed}:names")
    delays = publish_delays(seed)
    alphabet = string.ascii_lowercase + string.digits
    count = 0
    while True:
        count += 1
        host_id = "".join(names.choices(alphabet, k=4))
        msg = Message(f"cattle-{host_id}", f"{count:04d}", seed)
        # Publishing does not wait for the consumer (the queue is unbounded).
        asyncio.create_task(queue.put(msg), name=f"put-{msg.message_id}")
        log.info("Published message %s for %s", msg.message_id, msg.hostname)
        await asyncio.sleep(next(delays))


@profile
async def restart_host(msg: Message) -> None:
    """Pretend to restart the message's host; raises RestartFailed now and then."""
    await asyncio.sleep(msg.rng.uniform(0.05, 0.3))
    if msg.rng.random() < RESTART_FAILS:
        raise RestartFailed(f"could not restart {msg.hostname}")
    msg.restarted = True
    log.info("Restarted %s", msg.hostname)


@profile
async def save(msg: Message) -> None:
    """Pretend to save the message to a database; raises SaveFailed now and then."""
    await asyncio.sleep(msg.rng.uniform(0.05, 0.3))
    if msg.rng.random() < SAVE_FAILS:
        raise SaveFailed(f"could not save message {msg.message_id}")
    msg.saved = True
    log.info("Saved message %s", msg.message_id)


@profile
async def extend(msg: Message, done: asyncio.Event) -> None:
    """Push the message's deadline back every EXTEND_EVERY seconds until ``done`` is set."""
    while not done.is_set():
        msg.extended += 1
        log.debug("Extended the deadline of message %s (%d)", msg.message_id, msg.extended)
        await asyncio.sleep(EXTEND_EVERY)


@profile
async def cleanup(msg: Message) -> None:
    """Acknowledge the message, so that it is not delivered again."""
    await asyncio.sleep(ACK_TIME)
    msg.acked = True
    log.info("Acknowledged message %s", msg.message_id)


@profile
async def handle_message(msg: Message) -> None:
    """Restart, save and extend at once, report the failures, then acknowledge.

    Raises PoisonMessage for a poison message, before doing anything.
    """
    if msg.rng.random() < POISON:
        raise PoisonMessage(f"message {msg.message_id} is poison")
    done = asyncio.Event()
    extender = asyncio.create_task(extend(msg, done), name=f"extend-{msg.message_id}")
    results = await asyncio.gather(restart_host(msg), save(msg), return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            log.error("Handling message %s: %s", msg.message_id, result)
    done.set()
    await extender
    await cleanup(msg)


def report_failure(task: "asyncio.Task") -> None:
    """Hand the exception of a finished message task to the loop's exception handler."""
    if task.cancelled() or task.exception() is None:
        return
    task.get_loop().call_exception_handler({
        "message": f"{task.get_name()} failed",
        "exception": task.exception(),
        "task": task,
    })


@profile
async def consume(queue: asyncio.Queue) -> None:
    """Take messages off ``queue`` forever, each handled by a task of its own."""
    while True:
        msg = await queue.get()
        log.info("Consumed message %s", msg.message_id)
        task = asyncio.create_task(handle_message(msg), name=f"handle-{msg.message_id}")
        task.add_done_callback(report_failure)


def handle_exception(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The loop's exception handler: log the failure and keep the service running."""
    exc = context.get("exception")
    log.error("Caught exception: %s", exc if exc is not None else context["message"])


@profile
async def shutdown(sig: Optional[signal.Signals], loop: asyncio.AbstractEventLoop) -> None:
    """Cancel every other task, wait for them to finish, then stop ``loop``."""
    if sig is None:
        log.info("Time is up, shutting down")
    else:
        log.info("Received exit signal %s, shutting down", sig.name)
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    log.info("Cancelling %d outstanding tasks", len(tasks))
    await asyncio.gather(*tasks, return_exceptions=True)
    loop.stop()


def new_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    """Return a new event loop: uvloop's if asked for and importable, else asyncio's."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed: running on asyncio's own loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Return the options (``--uvloop``, ``--duration S``); argparse exits on bad ones."""
    parser = argparse.ArgumentParser(description="A small asyncio service that runs until signalled.")
    parser.add_argument("--uvloop", action="store_true",
                        default=os.environ.get("MAYHEM_UVLOOP", "") == "1",
                        help="run on uvloop if it is installed (or MAYHEM_UVLOOP=1)")
    parser.add_argument("--duration", type=float, metavar="S",
                        help="shut down by itself after S seconds")
    return parser.parse_args(argv)


def main(argv: Optional[list] = None) -> int:
    """Run the service until a signal (or --duration) stops it; return the exit status, 0."""
    opts = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(relativeCreated)6.0f ms %(levelname)s: %(message)s")
    seed = int(os.environ.get("MAYHEM_SEED", "0"))
    loop = new_loop(opts.uvloop)
    asyncio.set_event_loop(loop)
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: loop.create_task(shutdown(s, loop)))
    loop.set_exception_handler(handle_exception)
    queue: asyncio.Queue = asyncio.Queue()
    try:
        loop.create_task(publish(queue, seed), name="publisher")
        loop.create_task(consume(queue), name="consumer")
        if opts.duration is not None:
            loop.call_later(opts.duration, lambda: loop.create_task(shutdown(None, loop)))
        log.info("Mayhem service started on %s (seed %d)", type(loop).__module__, seed)
        loop.run_forever()
    finally:
        loop.close()
        asyncio.set_event_loop(None)
        log.info("Successfully shut down the Mayhem service")
    return 0


if __name__ == "__main__":
    sys.exit(main())
