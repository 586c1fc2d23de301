"""Generated gRPC/protobuf modules for the npc_runtime.v1 wire protocol.

Do not edit: regenerate with scripts/gen_proto.sh from proto/ (tests check they are current).
"""
