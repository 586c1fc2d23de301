"""Errors that become a gRPC status: a code and a message that names the field and the limit.

Domain code raises RpcError; the servicer turns it into `context.abort(code, message)`. Anything
else that escapes is a bug: logged with its traceback and answered INTERNAL, never a crash.
"""

from __future__ import annotations

import functools
import logging
from typing import Awaitable, Callable, TypeVar

import grpc

log = logging.getLogger(__name__)
T = TypeVar("T")


class RpcError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def invalid(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.NOT_FOUND, message)


def precondition(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.FAILED_PRECONDITION, message)


def exhausted(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def unavailable(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.UNAVAILABLE, message)


def unary_errors(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Decorate an async unary servicer method: RpcError -> its status, other errors -> INTERNAL."""

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext) -> T:
        try:
            return await method(self, request, context)
        except RpcError as e:
            await context.abort(e.code, e.message)
        except Exception:
            log.exception("%s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL,
                                f"{method.__name__}: internal error (see server log)")
        raise AssertionError("unreachable: context.abort raises")

    return wrapper
