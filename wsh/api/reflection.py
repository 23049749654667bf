"""Server reflection in both versions, ``grpc.reflection.v1`` and ``v1alpha``.

grpcio-reflection serves only v1alpha, while current grpcurl and buf curl
ask v1 first (``buf curl --reflect-protocol grpc-v1`` asks nothing else).
v1 is the same service under a new package: its messages are field for
field those of v1alpha (grpc-proto's reflection/v1/reflection.proto), so one
servicer answers both, with the v1alpha messages as the wire format.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection of ``service_names`` (and of itself) on ``server``."""
    servicer = ReflectionServicer((*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.method_handlers_generic_handler(
        V1_SERVICE_NAME,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))
