"""zmqfast: pyzmq's sends and ZMQStream behaviour, without its per-call overhead."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import zmq
from zmq.eventloop.zmqstream import ZMQStream

from amalthea.singleuser.zmqfast import LeanQueuedStream, LeanStream, lean_stream, send_frames

FRAMES = [b"topic", b"<IDS|MSG>", b"sig", b"{}", b"", memoryview(b"buffer")]


@pytest.fixture
def ctx() -> Any:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def pair(ctx: Any, kind: tuple[int, int] = (zmq.PAIR, zmq.PAIR)) -> tuple[Any, Any]:
    a, b = ctx.socket(kind[0]), ctx.socket(kind[1])
    a.bind("inproc://t")
    b.connect("inproc://t")
    return a, b


def test_send_frames_is_one_message(ctx: Any) -> None:
    a, b = pair(ctx)
    send_frames(a, FRAMES)
    assert b.recv_multipart() == [bytes(f) for f in FRAMES]


def test_send_frames_noblock_raises_again_without_a_peer(ctx: Any) -> None:
    dealer = ctx.socket(zmq.DEALER)
    with pytest.raises(zmq.Again):
        send_frames(dealer, [b"a", b"b"], int(zmq.NOBLOCK))


async def collect(stream: Any, count: int) -> list[list[bytes]]:
    got: list[list[bytes]] = []
    done = asyncio.get_running_loop().create_future()

    def on_recv(msg: list[bytes]) -> None:
        got.append(msg)
        if len(got) == count and not done.done():
            done.set_result(None)

    stream.on_recv(on_recv)
    await asyncio.wait_for(done, 10)
    return got


async def test_lean_stream_receives_every_message_in_order(ctx: Any) -> None:
    a, b = pair(ctx)
    stream = lean_stream(ZMQStream(b))
    assert type(stream) is LeanStream
    for i in range(100):  # more than one batch, all waiting before the first event
        a.send_multipart([b"%d" % i, b"x"])
    got = await collect(stream, 100)
    assert got == [[b"%d" % i, b"x"] for i in range(100)]
    stream.close()


async def test_lean_stream_sends_at_once_and_reports_to_on_send(ctx: Any) -> None:
    a, b = pair(ctx)
    stream = lean_stream(ZMQStream(a))
    sent: list[Any] = []
    stream.on_send(lambda msg, status: sent.append((msg, status)))
    stream.send_multipart([b"now", b"!"])
    # Delivered before the loop ran: no POLLOUT round trip.
    assert b.poll(1000) and b.recv_multipart() == [b"now", b"!"]
    assert sent == [([b"now", b"!"], None)]
    stream.close()


async def test_lean_stream_queues_when_it_would_block(ctx: Any) -> None:
    dealer = ctx.socket(zmq.DEALER)
    stream = lean_stream(ZMQStream(dealer))  # not connected: a send would block
    stream.send_multipart([b"first"])
    stream.send_multipart([b"second"])  # behind the queued one, never ahead of it
    assert stream.sending()
    router = ctx.socket(zmq.ROUTER)
    router.bind("inproc://late")
    dealer.connect("inproc://late")
    got = []
    for _ in range(100):
        await asyncio.sleep(0.02)
        while router.poll(0):
            got.append(router.recv_multipart()[1:])
        if len(got) == 2:
            break
    assert got == [[b"first"], [b"second"]]
    stream.close()


async def test_lean_stream_closed_stream_behaves_as_zmqstream(ctx: Any) -> None:
    a, _ = pair(ctx)
    stream = lean_stream(ZMQStream(a))
    stream.close()
    assert stream.closed()
    with pytest.raises(OSError):
        stream.send_multipart([b"late"])


async def test_subclasses_and_closed_streams_are_left_alone(ctx: Any) -> None:
    class Custom(ZMQStream):
        pass

    a, b = pair(ctx)
    custom = Custom(a)
    assert type(lean_stream(custom)) is Custom
    closed = ZMQStream(b)
    closed.close()
    assert type(lean_stream(closed)) is ZMQStream
    custom.close()


async def test_queued_variant_sends_only_when_the_loop_runs(ctx: Any) -> None:
    a, b = pair(ctx)
    stream = lean_stream(ZMQStream(a), send_at_once=False)
    assert type(stream) is LeanQueuedStream
    stream.send_multipart([b"later"])
    assert not b.poll(50)  # still queued: the owner decides when it leaves (flush or loop)
    stream.flush()
    assert b.poll(1000) and b.recv_multipart() == [b"later"]
    stream.close()
