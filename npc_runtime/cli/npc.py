"""`npc-runtime npc add|list|show|rm`: manage the NPCs of a running sidecar over gRPC."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import grpc

from npc_runtime._proto import emotion_pb2, npc_pb2, runtime_pb2_grpc

log = logging.getLogger(__name__)
DEFAULT_SERVER = "127.0.0.1:50051"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("npc", help="add, list, show or remove NPCs on a running sidecar")
    p.add_argument("--server", default=DEFAULT_SERVER, help=f"HOST:PORT (default {DEFAULT_SERVER})")
    sub = p.add_subparsers(dest="npc_command", required=True)
    add = sub.add_parser("add", help="register an NPC from 1-4 reference images")
    add.add_argument("npc_id", help="id, 1-64 characters of [A-Za-z0-9_-]")
    add.add_argument("images", nargs="+", type=Path, help="PNG or JPEG reference images")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--emotion", default="", help="default emotion TAG[:INTENSITY]")
    add.add_argument("--preset", action="append", default=[], metavar="NAME=TAG:W[,TAG:W]",
                     help="designer preset, e.g. smug=happy:0.6,angry:0.2 (repeatable)")
    sub.add_parser("list", help="list registered NPCs")
    show = sub.add_parser("show", help="show one NPC as JSON")
    show.add_argument("npc_id")
    rm = sub.add_parser("rm", help="delete an NPC")
    rm.add_argument("npc_id")
    p.set_defaults(func=run)


def parse_tag(text: str) -> emotion_pb2.TagEmotion:
    name, _, intensity = text.partition(":")
    msg = emotion_pb2.TagEmotion(name=name)
    if intensity:
        msg.intensity = float(intensity)
    return msg


def parse_preset(text: str) -> emotion_pb2.EmotionPreset:
    name, sep, body = text.partition("=")
    if not sep or not body:
        raise ValueError(f"preset {text!r}: expected NAME=TAG:W[,TAG:W]")
    blend = {}
    for part in body.split(","):
        tag, _, weight = part.partition(":")
        blend[tag] = float(weight or 1.0)
    return emotion_pb2.EmotionPreset(name=name, blend=blend)


def npc_summary(npc: npc_pb2.Npc) -> dict:
    return {
        "npc_id": npc.npc_id, "display_name": npc.display_name,
        "default_emotion": {"name": npc.default_emotion.name,
                            "intensity": round(npc.default_emotion.intensity, 4)},
        "presets": {p.name: dict(p.blend) for p in npc.presets},
        "references": [{"sha256": r.sha256, "media_type": r.media_type, "width": r.width,
                        "height": r.height, "size_bytes": r.size_bytes} for r in npc.references],
        "revision": npc.revision, "streaming": npc.streaming,
    }


def run(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.server, options=[
            ("grpc.max_send_message_length", 64 << 20)]) as channel:
        stub = runtime_pb2_grpc.NpcRuntimeStub(channel)
        try:
            return _dispatch(args, stub)
        except grpc.RpcError as e:
            log.error("%s: %s", e.code().name, e.details())
            return 1
        except (OSError, ValueError) as e:
            log.error("%s", e)
            return 2


def _dispatch(args: argparse.Namespace, stub) -> int:
    if args.npc_command == "add":
        req = npc_pb2.RegisterNpcRequest(
            npc_id=args.npc_id, display_name=args.name,
            reference_images=[p.read_bytes() for p in args.images],
            presets=[parse_preset(p) for p in args.preset])
        if args.emotion:
            req.default_emotion.CopyFrom(parse_tag(args.emotion))
        npc = stub.RegisterNpc(req, timeout=60)
        log.info("registered %s", npc.npc_id)
        print(json.dumps(npc_summary(npc), indent=2))
    elif args.npc_command == "list":
        token = ""
        while True:
            page = stub.ListNpcs(npc_pb2.ListNpcsRequest(page_token=token), timeout=30)
            for npc in page.npcs:
                print(f"{npc.npc_id}\t{npc.display_name}\t{len(npc.references)} image(s)"
                      f"{chr(9) + 'streaming' if npc.streaming else ''}")
            token = page.next_page_token
            if not token:
                break
    elif args.npc_command == "show":
        npc = stub.GetNpc(npc_pb2.GetNpcRequest(npc_id=args.npc_id), timeout=30)
        print(json.dumps(npc_summary(npc), indent=2))
    elif args.npc_command == "rm":
        stub.DeleteNpc(npc_pb2.DeleteNpcRequest(npc_id=args.npc_id), timeout=30)
        log.info("deleted %s", args.npc_id)
    sys.stdout.flush()
    return 0
