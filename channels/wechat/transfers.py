"""The simulated channel's merchant transfers (商家转账到零钱): batches, details and balance.

A batch is taken (ACCEPTED) only when the merchant's transfer balance covers it, and that much
is set aside at once, so two batches can never spend the same money. Its details are paid
shortly after, each ending SUCCESS or FAIL; a failed detail's money goes back to the balance.
A batch is idempotent on ``out_batch_no``: the same request again answers the same batch, a
different request under that number is refused. Payees are simulated by openid and name: an
openid starting with ``missing`` has no account, the name ``Wrong Name`` fails the real-name
check. The payee's name arrives encrypted for the platform key and is opened with it here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from channels.simulator import Behaviour
from channels.wechat.signing import SERIAL_HEADER, SensitiveUnreadable, decrypt_sensitive
from channels.wechat.trades import Answer, RequestInvalid, error_answer, json_body
from channels.wechat.wire import (
    TRANSFER_NO_RULE,
    TRANSFER_TEXT_LIMIT,
    BatchStatus,
    DetailStatus,
    wechat_time,
)

DEFAULT_PAYOUT_BALANCE_MINOR = 100_000_000_000  # 1,000,000,000.00 CNY
MISSING_ACCOUNT_PREFIX = "missing"
WRONG_NAME = "Wrong Name"
MAX_DETAILS = 3000

Decrypt = Callable[[str], str]


@dataclass(frozen=True)
class DetailRequest:
    """One transfer of a batch, its payee's name already decrypted."""

    out_detail_no: str
    transfer_amount: int  # fen
    transfer_remark: str
    openid: str
    user_name: str  # empty when the merchant sent no name to check


@dataclass(frozen=True)
class BatchRequest:
    """A merchant's transfer batch, as read from its JSON body."""

    appid: str
    out_batch_no: str
    batch_name: str
    batch_remark: str
    total_amount: int  # fen
    details: tuple[DetailRequest, ...]


@dataclass
class SimDetail:
    """A transfer the channel took: PROCESSING until it is paid or fails."""

    request: DetailRequest
    detail_id: str
    initiated_at: datetime
    updated_at: datetime
    status: DetailStatus = DetailStatus.PROCESSING
    fail_reason: str | None = None


@dataclass
class SimBatch:
    """A batch the channel took, with its details by ``out_detail_no``."""

    request: BatchRequest
    batch_id: str
    created_at: datetime
    details: dict[str, SimDetail]
    status: BatchStatus = BatchStatus.ACCEPTED


def parse_batch_request(payload: Any, decrypt: Decrypt) -> BatchRequest:
    """Read a transfer batch body, opening each ``user_name`` with ``decrypt``; raises
    RequestInvalid."""
    body = _object(payload, "body")
    listed = body.get("transfer_detail_list")
    if not isinstance(listed, list) or not 0 < len(listed) <= MAX_DETAILS:
        raise RequestInvalid(f"transfer_detail_list must hold 1 to {MAX_DETAILS} details")
    details = tuple(_detail(item, decrypt) for item in listed)
    if len({detail.out_detail_no for detail in details}) != len(details):
        raise RequestInvalid("商家明细单号重复")
    if _positive(body, "total_num") != len(details):
        raise RequestInvalid("转账总笔数与明细笔数不一致")
    total_amount = _positive(body, "total_amount")
    if total_amount != sum(detail.transfer_amount for detail in details):
        raise RequestInvalid("转账总金额与明细金额之和不一致")
    return BatchRequest(
        appid=_text(body, "appid"),
        out_batch_no=_number(body, "out_batch_no"),
        batch_name=_text(body, "batch_name", TRANSFER_TEXT_LIMIT),
        batch_remark=_text(body, "batch_remark", TRANSFER_TEXT_LIMIT),
        total_amount=total_amount,
        details=details,
    )


def _detail(item: Any, decrypt: Decrypt) -> DetailRequest:
    detail = _object(item, "transfer_detail_list[]")
    sealed = detail.get("user_name")
    if sealed is not None and not isinstance(sealed, str):
        raise RequestInvalid("user_name must be a string")
    return DetailRequest(
        out_detail_no=_number(detail, "out_detail_no"),
        transfer_amount=_positive(detail, "transfer_amount"),
        transfer_remark=_text(detail, "transfer_remark", TRANSFER_TEXT_LIMIT),
        openid=_text(detail, "openid"),
        user_name=decrypt(sealed) if sealed else "",
    )


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestInvalid(f"{name} must be a JSON object")
    return value


def _text(body: dict[str, Any], key: str, limit: int | None = None) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise RequestInvalid(f"{key} is missing")
    if limit is not None and len(value) > limit:
        raise RequestInvalid(f"{key} has more than {limit} characters")
    return value


def _number(body: dict[str, Any], key: str) -> str:
    return check_number(key, _text(body, key))


def check_number(key: str, value: str) -> str:
    """A merchant's batch or detail number, if it keeps the channel's rule; raises
    RequestInvalid."""
    if not TRANSFER_NO_RULE.fullmatch(value):
        raise RequestInvalid(f"{key} 只能由5到32位数字和大小写字母组成")
    return value


def _positive(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RequestInvalid(f"{key} must be a positive whole number")
    return value


def accepted_json(batch: SimBatch) -> dict[str, Any]:
    """A batch as the create call answers it (again on a repeat, with its current status)."""
    return {
        "out_batch_no": batch.request.out_batch_no,
        "batch_id": batch.batch_id,
        "create_time": wechat_time(batch.created_at),
        "batch_status": batch.status.value,
    }


def detail_json(batch: SimBatch, detail: SimDetail, mchid: str) -> dict[str, Any]:
    """A detail as the detail query answers it."""
    wanted = detail.request
    shown: dict[str, Any] = {
        "mchid": mchid,
        "out_batch_no": batch.request.out_batch_no,
        "batch_id": batch.batch_id,
        "appid": batch.request.appid,
        "out_detail_no": wanted.out_detail_no,
        "detail_id": detail.detail_id,
        "detail_status": detail.status.value,
        "transfer_amount": wanted.transfer_amount,
        "transfer_remark": wanted.transfer_remark,
        "openid": wanted.openid,
        "initiate_time": wechat_time(detail.initiated_at),
        "update_time": wechat_time(detail.updated_at),
    }
    if detail.fail_reason is not None:
        shown["fail_reason"] = detail.fail_reason
    return shown


@dataclass(frozen=True)
class TransferAccount:
    """What the transfer desk needs of the merchant and the platform."""

    mchid: str
    appid: str
    platform_serial: str
    platform_key: RSAPrivateKey


class TransferDesk:
    """The merchant's transfer balance and batches, and the two endpoints over them."""

    def __init__(
        self,
        account: TransferAccount,
        behaviour: Behaviour,
        clock: Callable[[], datetime],
        balance_minor: int = DEFAULT_PAYOUT_BALANCE_MINOR,
    ) -> None:
        self.account = account
        self.balance_minor = balance_minor
        self.batches: dict[str, SimBatch] = {}
        self._behaviour = behaviour
        self._clock = clock
        self._serial = 0
        self._payments: set[asyncio.Task[None]] = set()

    async def create(self, request: web.Request, body: bytes) -> Answer:
        """``POST /v3/transfer/batches``."""
        try:
            wanted = parse_batch_request(
                json_body(body), lambda sealed: self._name(request, sealed)
            )
        except RequestInvalid as error:
            return error_answer(400, "PARAM_ERROR", str(error))
        if wanted.appid != self.account.appid:
            return error_answer(400, "INVALID_REQUEST", "appid与商户号不匹配")
        earlier = self.batches.get(wanted.out_batch_no)
        if earlier is not None:
            if earlier.request != wanted:
                return error_answer(400, "INVALID_REQUEST", "商家批次单号已用于另一批次")
            return Answer(200, accepted_json(earlier))
        if wanted.total_amount > self.balance_minor:
            return error_answer(403, "NOT_ENOUGH", "资金不足")
        return Answer(200, accepted_json(self._accept(wanted)))

    async def detail(self, request: web.Request, _: bytes) -> Answer:
        """``GET /v3/transfer/batches/out-batch-no/{..}/details/out-detail-no/{..}``."""
        try:
            out_batch_no = check_number("out_batch_no", request.match_info["out_batch_no"])
            out_detail_no = check_number("out_detail_no", request.match_info["out_detail_no"])
        except RequestInvalid as error:
            return error_answer(400, "PARAM_ERROR", str(error))
        batch = self.batches.get(out_batch_no)
        detail = batch.details.get(out_detail_no) if batch is not None else None
        if batch is None or detail is None:
            return error_answer(404, "NOT_FOUND", "记录不存在")
        return Answer(200, detail_json(batch, detail, self.account.mchid))

    async def close(self) -> None:
        """Stop the batches still being paid."""
        for task in list(self._payments):
            task.cancel()
        await asyncio.gather(*self._payments, return_exceptions=True)

    def _name(self, request: web.Request, sealed: str) -> str:
        # Only the key the request names can open the name, as on the real channel.
        if request.headers.get(SERIAL_HEADER) != self.account.platform_serial:
            raise RequestInvalid(f"{SERIAL_HEADER} does not name the platform key")
        try:
            return decrypt_sensitive(self.account.platform_key, sealed)
        except SensitiveUnreadable as error:
            raise RequestInvalid("user_name 解密失败") from error

    def _accept(self, wanted: BatchRequest) -> SimBatch:
        now = self._clock()
        self.balance_minor -= wanted.total_amount
        details = {
            one.out_detail_no: SimDetail(one, self._next_id("1040000", now), now, now)
            for one in wanted.details
        }
        batch = SimBatch(wanted, self._next_id("1030000", now), now, details)
        self.batches[wanted.out_batch_no] = batch
        task = asyncio.get_running_loop().create_task(self._pay(batch))
        self._payments.add(task)
        task.add_done_callback(self._payments.discard)
        return batch

    def _next_id(self, prefix: str, when: datetime) -> str:
        self._serial += 1
        return f"{prefix}{when:%Y%m%d%H%M%S}{self._serial:019d}"

    async def _pay(self, batch: SimBatch) -> None:
        await asyncio.sleep(self._behaviour.answer_seconds())
        for detail in batch.details.values():
            self._settle(detail)
        batch.status = BatchStatus.FINISHED

    def _settle(self, detail: SimDetail) -> None:
        reason = self._refusal(detail.request)
        detail.updated_at = self._clock()
        if reason is None:
            detail.status = DetailStatus.SUCCESS
            return
        detail.status, detail.fail_reason = DetailStatus.FAIL, reason
        self.balance_minor += detail.request.transfer_amount

    def _refusal(self, wanted: DetailRequest) -> str | None:
        if wanted.openid.startswith(MISSING_ACCOUNT_PREFIX):
            return "ACCOUNT_NOT_EXIST"
        if wanted.user_name == WRONG_NAME:
            return "NAME_NOT_CORRECT"
        if not self._behaviour.succeeds():
            return "TRANSFER_RISK"
        return None
