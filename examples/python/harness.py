#!/usr/bin/env python3
"""An example integration harness for execdriverd in Python (grpcio).

It generates the client from proto/ with grpcio-tools (into a temporary directory, nothing is
committed), connects to the daemon's unix socket, and:

  1. asks Info,
  2. subscribes to Events for a new container,
  3. creates the container from a busybox rootfs (stdin open),
  4. attaches, starts it, writes a line to its stdin and closes it,
  5. reads its stdout and stderr and its exit status from the attach stream,
  6. deletes it,
  7. checks that the events came in order (created, started, exited with the code, deleted)
     with increasing sequence numbers.

Usage: python3 harness.py --socket /run/execdriverd.sock --rootfs /path/to/busybox-rootfs
Needs: pip install grpcio grpcio-tools. Exits 0 when everything checked out.
"""

import argparse
import os
import sys
import tempfile
import threading
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))


def generate(proto_dir, out_dir):
    """Compiles execdriver/v1/execdriver.proto into out_dir; returns the two modules."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main([
        "grpc_tools.protoc",
        "-I", proto_dir,
        "-I", well_known,
        "--python_out", out_dir,
        "--grpc_python_out", out_dir,
        os.path.join(proto_dir, "execdriver", "v1", "execdriver.proto"),
    ])
    if rc != 0:
        raise SystemExit(f"protoc failed ({rc})")
    sys.path.insert(0, out_dir)
    from execdriver.v1 import execdriver_pb2, execdriver_pb2_grpc
    return execdriver_pb2, execdriver_pb2_grpc


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default="/run/execdriverd.sock")
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--proto", default=DEFAULT_PROTO, help="the proto/ directory")
    args = ap.parse_args()

    import grpc

    with tempfile.TemporaryDirectory(prefix="execdriver-py-") as gen:
        pb, rpc = generate(args.proto, gen)
        # A plain channel: grpcio sends the socket's path as :authority, which execdriverd
        # accepts (no grpc.default_authority needed).
        channel = grpc.insecure_channel("unix://" + os.path.abspath(args.socket))
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = rpc.ExecDriverStub(channel)

        info = stub.Info(pb.InfoRequest(), timeout=10)
        check(info.version != "" and info.kernel_version != "", f"Info: execdriverd {info.version} on {info.kernel_version}")
        check("NEWPID" in info.namespaces, "Info lists NEWPID")

        cid = "py-" + uuid.uuid4().hex[:12]
        events = stub.Events(pb.EventsRequest(ids=[cid]))
        # The subscription exists once the response headers are in.
        last = dict(events.initial_metadata()).get("execdriver-last-sequence")
        check(last is not None, f"Events subscribed (last sequence {last})")
        seen = []

        def collect():
            try:
                for e in events:
                    seen.append(e)
                    if e.type == pb.EVENT_TYPE_DELETED:
                        return
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.CANCELLED:
                    seen.append(e)

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()

        script = 'read line; echo "got $line"; echo to-stderr >&2; exit 3'
        stub.Create(pb.CreateRequest(
            id=cid,
            rootfs=os.path.abspath(args.rootfs),
            process=pb.Process(args=["sh", "-c", script], open_stdin=True),
            labels={"harness": "python"},
        ), timeout=30)
        print(f"created {cid}")

        # A deadline: Wait on a container that has not started ends with DEADLINE_EXCEEDED.
        try:
            stub.Wait(pb.WaitRequest(id=cid), timeout=0.3)
            check(False, "Wait with a 300 ms deadline returns")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f"Wait with a 300 ms deadline: {e.code()}")

        started = threading.Event()

        def requests():
            yield pb.AttachRequest(start=pb.AttachStart(id=cid, stdin=True, stdout=True, stderr=True))
            started.wait(30)
            yield pb.AttachRequest(stdin=b"hello from python\n")
            yield pb.AttachRequest(close_stdin=pb.CloseStdin())

        attach = stub.Attach(requests(), timeout=60)
        attach.initial_metadata()  # attached: nothing the container writes is missed
        stub.Start(pb.StartRequest(id=cid), timeout=30)
        started.set()
        out, err, exit_status = b"", b"", None
        for msg in attach:
            kind = msg.WhichOneof("kind")
            if kind == "output":
                if msg.output.stream == pb.STREAM_STDERR:
                    err += msg.output.data
                else:
                    out += msg.output.data
            elif kind == "exit":
                exit_status = msg.exit
                break
        check(out == b"got hello from python\n", f"stdout through Attach: {out!r}")
        check(err == b"to-stderr\n", f"stderr kept apart: {err!r}")
        check(exit_status is not None and exit_status.exit_code == 3, f"exit code 3 in the attach stream")

        wait = stub.Wait(pb.WaitRequest(id=cid), timeout=30)
        check(wait.exit.status_code == 3, "Wait says 3")
        stub.Delete(pb.DeleteRequest(id=cid), timeout=30)
        print(f"deleted {cid}")

        reader.join(30)
        events.cancel()
        errors = [e for e in seen if isinstance(e, Exception)]
        check(not errors, f"the event stream had no error {errors}")
        kinds = [pb.EventType.Name(e.type) for e in seen]
        check(kinds == ["EVENT_TYPE_CREATED", "EVENT_TYPE_STARTED", "EVENT_TYPE_EXITED", "EVENT_TYPE_DELETED"],
              f"events in order: {kinds}")
        check(all(a.sequence < b.sequence for a, b in zip(seen, seen[1:])), "sequence numbers increase")
        check(seen[2].exit.exit_code == 3, "the exited event has code 3")
        check(all(e.labels.get("harness") == "python" for e in seen), "events carry the labels")

        try:
            stub.State(pb.StateRequest(id=cid), timeout=10)
            check(False, "State of a deleted container fails")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, "State of a deleted container is NOT_FOUND")
        channel.close()
    print("PASS")


if __name__ == "__main__":
    main()
