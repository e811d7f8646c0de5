"""The service's failures as gRPC statuses, one mapping for both servicers."""

from collections.abc import Awaitable
from typing import NoReturn, TypeVar

import grpc

from finplat.backtest.errors import NotFoundError, StoreError
from finplat.backtest.service.validation import RequestError

T = TypeVar("T")
Context = grpc.aio.ServicerContext[object, object]


async def abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("abort returned")  # grpc.aio's abort always raises


async def answered(context: Context, work: Awaitable[T]) -> T:
    """What ``work`` gives; a refused request with its status, NOT_FOUND for what the store
    does not hold, INTERNAL when the store fails."""
    try:
        return await work
    except RequestError as exc:
        await abort(context, exc.code, exc.message)
    except NotFoundError as exc:
        await abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
    except StoreError as exc:
        await abort(context, grpc.StatusCode.INTERNAL, str(exc))
