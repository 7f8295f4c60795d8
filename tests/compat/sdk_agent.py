#!/usr/bin/env python3
"""A minimal echo agent on the platform's official Python SDK (band-sdk).

It proves the SDK works against switchboard's sandbox: it connects through the
SDK's own public entry points (``Agent.create`` + a ``SimpleAdapter``), answers
each message it is given with ``echo: <text>``, and exits after N messages
(exit 0) or a timeout (exit 1). The SDK itself marks each message processing
and then processed around ``on_message``.

Usage:
    python tests/compat/sdk_agent.py --rest-url http://127.0.0.1:PORT \
        --ws-url ws://127.0.0.1:PORT/api/v1/socket/websocket \
        --agent-id ID --api-key KEY [--messages 1] [--timeout 60]

Every option can also come from the environment: BAND_REST_URL, BAND_WS_URL,
BAND_AGENT_ID, BAND_API_KEY, COMPAT_MESSAGES, COMPAT_TIMEOUT.
Progress lines on stdout start with "sdk_agent:"; SDK logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from band import Agent, AgentConfig
from band.core.simple_adapter import SimpleAdapter
from band.core.types import PlatformMessage


def say(text: str) -> None:
    """One progress line, flushed at once so a parent process sees it live."""
    print(f"sdk_agent: {text}", flush=True)


class EchoAdapter(SimpleAdapter[Any]):
    """Replies `echo: <text>` to the sender of every message it is handed."""

    def __init__(self, wanted: int) -> None:
        super().__init__()
        self.wanted = wanted
        self.handled = 0
        self.done = asyncio.Event()

    async def on_started(self, agent_name: str, agent_description: str) -> None:
        await super().on_started(agent_name, agent_description)
        say(f"started as {agent_name!r} ({agent_description!r})")

    async def on_message(
        self,
        msg: PlatformMessage,
        tools: Any,
        history: Any,
        participants_msg: str | None,
        contacts_msg: str | None,
        *,
        is_session_bootstrap: bool,
        room_id: str,
    ) -> None:
        say(
            f"received message {msg.id} in room {room_id} from "
            f"{msg.sender_type} {msg.sender_id}: {msg.content!r}"
        )
        # The platform requires at least one mention; reply to the sender.
        sent = await tools.send_message(f"echo: {msg.content}", mentions=[msg.sender_id])
        sent_id = getattr(sent, "id", None)
        say(f"replied to {msg.id} with message {sent_id}")
        self.handled += 1
        if self.handled >= self.wanted:
            self.done.set()


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rest-url", default=env("BAND_REST_URL"), help="REST base, e.g. http://127.0.0.1:PORT")
    p.add_argument("--ws-url", default=env("BAND_WS_URL"), help="socket URL ending in /api/v1/socket/websocket")
    p.add_argument("--agent-id", default=env("BAND_AGENT_ID"))
    p.add_argument("--api-key", default=env("BAND_API_KEY"))
    p.add_argument("--messages", type=int, default=int(env("COMPAT_MESSAGES", "1")), help="exit after this many replies")
    p.add_argument("--timeout", type=float, default=float(env("COMPAT_TIMEOUT", "60")), help="give up after this many seconds")
    p.add_argument("--verbose", action="store_true", help="SDK logs at DEBUG instead of INFO")
    args = p.parse_args(argv)
    missing = [n for n in ("rest_url", "ws_url", "agent_id", "api_key") if not getattr(args, n)]
    if missing:
        p.error("missing: " + ", ".join("--" + m.replace("_", "-") for m in missing))
    return args


async def run(args: argparse.Namespace) -> int:
    adapter = EchoAdapter(args.messages)
    agent = Agent.create(
        adapter=adapter,
        agent_id=args.agent_id,
        api_key=args.api_key,
        ws_url=args.ws_url,
        rest_url=args.rest_url,
        # Two compat runs on one host must not trip the SDK's host-wide lock.
        config=AgentConfig(single_instance=False),
    )
    say(f"connecting to {args.rest_url} and {args.ws_url} as agent {args.agent_id}")
    try:
        await asyncio.wait_for(agent.start(), timeout=args.timeout)
    except Exception as exc:  # report any start failure plainly, then fail
        say(f"FAILED to start: {type(exc).__name__}: {exc}")
        return 1
    say("connected; waiting for messages")

    forever = asyncio.create_task(agent.run_forever(install_signal_handlers=False))
    finished = asyncio.create_task(adapter.done.wait())
    done, _ = await asyncio.wait({forever, finished}, timeout=args.timeout, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if finished in done:
        say(f"handled {adapter.handled} message(s)")
    elif forever in done:
        say(f"FAILED: the agent stopped by itself after {adapter.handled} message(s)")
        code = 1
    else:
        say(f"FAILED: timed out after {args.timeout}s with {adapter.handled}/{args.messages} message(s)")
        code = 1
    # Graceful: lets the SDK finish marking the last message processed.
    graceful = await agent.stop(timeout=10)
    finished.cancel()
    await asyncio.gather(forever, finished, return_exceptions=True)
    say(f"stopped (graceful={graceful})")
    return code


def main() -> int:
    args = parse_args(sys.argv[1:])
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
