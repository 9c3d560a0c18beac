"""Liveness: answers without a token and tells nothing about any tenant."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from routes.policy import public

router = APIGatewayRouter()


@router.get("/health", middlewares=[public()])
def health() -> dict[str, str]:
    return {"status": "ok"}
