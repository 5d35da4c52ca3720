"""Mixins: APIMixin (HTTP calls, with urllib) and DecisionMixin."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

from ..types import DecisionPointOutcome, DecisionType, StepHandlerResult

_STATUS_TYPES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 408: "request_timeout", 409: "conflict", 410: "gone",
                 422: "unprocessable_entity", 429: "rate_limited", 500: "internal_server_error",
                 502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout"}


class ApiResponse:
    def __init__(self, status_code: int, headers: Dict[str, str], body: Any, raw_response: Any = None,
                 reason: str = "") -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body
        self.raw_response = raw_response
        self.reason = reason

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_client_error(self) -> bool:
        return 400 <= self.status_code < 500

    @property
    def is_server_error(self) -> bool:
        return 500 <= self.status_code < 600

    @property
    def is_retryable(self) -> bool:
        return self.status_code in (408, 429, 500, 502, 503, 504)

    @property
    def retry_after(self) -> Optional[int]:
        v = next((val for k, val in self.headers.items() if k.lower() == "retry-after"), None)
        if v is None:
            return None
        try:
            return int(v)
        except ValueError:
            return 60

    def to_dict(self) -> Dict[str, Any]:
        return {"status_code": self.status_code, "headers": self.headers, "body": self.body}


class APIMixin:
    base_url: str = ""
    default_timeout: float = 30.0
    default_headers: Dict[str, str] = {}

    def close(self) -> None:
        pass

    def request(self, method: str, path: str, params: Optional[Dict[str, Any]] = None, json_body: Any = None,
                data: Any = None, headers: Optional[Dict[str, str]] = None, timeout: Optional[float] = None,
                **kw: Any) -> ApiResponse:
        if "json" in kw:
            json_body = kw.pop("json")
        url = self.base_url.rstrip("/") + "/" + path.lstrip("/") if self.base_url else path
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        hdrs = dict(self.default_headers)
        hdrs.update(headers or {})
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = data if isinstance(data, bytes) else (
                urllib.parse.urlencode(data).encode() if isinstance(data, dict) else str(data).encode())
        req = urllib.request.Request(url, data=body, headers=hdrs, method=method.upper())
        try:
            resp = urllib.request.urlopen(req, timeout=timeout or self.default_timeout)
            status, reason, raw = resp.status, resp.reason, resp
        except urllib.error.HTTPError as e:
            status, reason, raw = e.code, e.reason, e
        payload = raw.read()
        rh = {k: v for k, v in raw.headers.items()}
        ctype = next((v for k, v in rh.items() if k.lower() == "content-type"), "")
        parsed: Any = payload.decode("utf-8", "replace")
        if "application/json" in ctype:
            try:
                parsed = json.loads(payload or b"null")
            except ValueError:
                pass
        return ApiResponse(status, rh, parsed, raw, str(reason))

    def get(self, path: str, params: Optional[Dict[str, Any]] = None, headers: Optional[Dict[str, str]] = None,
            **kw: Any) -> ApiResponse:
        return self.request("GET", path, params=params, headers=headers, **kw)

    def post(self, path: str, json: Any = None, data: Any = None, headers: Optional[Dict[str, str]] = None,
             **kw: Any) -> ApiResponse:
        return self.request("POST", path, json_body=json, data=data, headers=headers, **kw)

    def put(self, path: str, json: Any = None, data: Any = None, headers: Optional[Dict[str, str]] = None,
            **kw: Any) -> ApiResponse:
        return self.request("PUT", path, json_body=json, data=data, headers=headers, **kw)

    def patch(self, path: str, json: Any = None, data: Any = None, headers: Optional[Dict[str, str]] = None,
              **kw: Any) -> ApiResponse:
        return self.request("PATCH", path, json_body=json, data=data, headers=headers, **kw)

    def delete(self, path: str, headers: Optional[Dict[str, str]] = None, **kw: Any) -> ApiResponse:
        return self.request("DELETE", path, headers=headers, **kw)

    def api_success(self, response: ApiResponse, result: Optional[Dict[str, Any]] = None,
                    include_response: bool = True) -> StepHandlerResult:
        if result is None:
            result = response.body if isinstance(response.body, dict) else {"data": response.body}
        meta = {"status_code": response.status_code, "headers": response.headers} if include_response else {}
        return self.success(result, meta)  # type: ignore[attr-defined]

    def api_failure(self, response: ApiResponse, message: Optional[str] = None) -> StepHandlerResult:
        code = response.status_code
        etype = _STATUS_TYPES.get(code) or ("client_error" if 400 <= code < 500 else
                                            "server_error" if 500 <= code < 600 else "http_error")
        detail = response.reason
        if isinstance(response.body, dict):
            for k in ("error", "message", "detail", "error_message", "msg"):
                if response.body.get(k):
                    detail = response.body[k]
                    break
        meta: Dict[str, Any] = {"status_code": code, "headers": response.headers}
        if response.retry_after is not None:
            meta["retry_after_seconds"] = response.retry_after
        if response.body:
            meta["response_body"] = response.body
        return self.failure(message or f"HTTP {code}: {detail}", etype, response.is_retryable, meta)  # type: ignore[attr-defined]

    def connection_error(self, error: BaseException, context: Optional[str] = None) -> StepHandlerResult:
        msg = f"Connection error: {error}" + (f" ({context})" if context else "")
        return self.failure(msg, "connection_error", True, {"exception_type": type(error).__name__})  # type: ignore[attr-defined]

    def timeout_error(self, error: BaseException, context: Optional[str] = None) -> StepHandlerResult:
        msg = f"Timeout: {error}" + (f" ({context})" if context else "")
        return self.failure(msg, "timeout", True, {"exception_type": type(error).__name__})  # type: ignore[attr-defined]


class DecisionMixin:
    def _decision_meta(self, metadata: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        m = metadata if metadata is not None else {}
        m["decision_handler"] = self.name  # type: ignore[attr-defined]
        m["decision_version"] = self.version  # type: ignore[attr-defined]
        return m

    def decision_success(self, steps: List[str], routing_context: Optional[Dict[str, Any]] = None,
                         metadata: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        return self.decision_success_with_outcome(
            DecisionPointOutcome.create_steps(list(steps), routing_context=routing_context), metadata)

    def route_to_steps(self, step_names: List[str], routing_context: Optional[Dict[str, Any]] = None,
                       metadata: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        return self.decision_success(step_names, routing_context, metadata)

    def decision_success_with_outcome(self, outcome: DecisionPointOutcome,
                                      metadata: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        if outcome.decision_type == DecisionType.NO_BRANCHES:
            return self.decision_no_branches(outcome, metadata)
        result: Dict[str, Any] = {"decision_point_outcome": {"type": outcome.decision_type.value,
                                                             "step_names": outcome.next_step_names}}
        if outcome.dynamic_steps:
            result["dynamic_steps"] = outcome.dynamic_steps
        if outcome.routing_context:
            result["routing_context"] = outcome.routing_context
        return self.success(result, self._decision_meta(metadata))  # type: ignore[attr-defined]

    def skip_branches(self, reason: str, routing_context: Optional[Dict[str, Any]] = None,
                      metadata: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        return self.decision_no_branches(DecisionPointOutcome.no_branches(reason, routing_context), metadata)

    def decision_no_branches(self, outcome: DecisionPointOutcome,
                             metadata: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        result: Dict[str, Any] = {"decision_point_outcome": {"type": "no_branches"}, "reason": outcome.reason}
        if outcome.routing_context:
            result["routing_context"] = outcome.routing_context
        return self.success(result, self._decision_meta(metadata))  # type: ignore[attr-defined]

    def decision_failure(self, message: str, error_type: str = "decision_error", retryable: bool = False,
                         metadata: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        return self.failure(message, error_type, retryable, self._decision_meta(metadata))  # type: ignore[attr-defined]
