"""Security headers on every answer: what a browser may load, frame and sniff on IPX's pages.

IPX's pages use no inline script or style and load everything from IPX itself, except Stripe.js on the order page
(and the frames and calls it makes), so the policy can forbid the rest: an injected <script> would not run, another
site could not frame the buy or staff-decision buttons to trick a click (clickjacking), and nothing is sniffed into
a type it was not sent as. An answer that sets its own policy (a downloaded file: sandboxed) keeps it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ipx.config import Settings

# What Stripe.js itself needs besides the origin it is loaded from (Stripe's published CSP directives).
STRIPE_ORIGINS = {"script-src": "", "frame-src": " https://hooks.stripe.com", "connect-src": " https://api.stripe.com"}


def content_security_policy(stripe_js_url: str) -> str:
    parts = urlsplit(stripe_js_url)
    stripe = f"{parts.scheme}://{parts.netloc}"
    real_stripe = parts.netloc.endswith("stripe.com")
    extra = {name: f" {stripe}" + (more if real_stripe else "") for name, more in STRIPE_ORIGINS.items()}
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self'{extra['script-src']}",
        f"frame-src{extra['frame-src']}",
        f"connect-src 'self'{extra['connect-src']}",
        "img-src 'self' data:",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def security_headers(settings: Settings) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": content_security_policy(settings.stripe_js_url),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP level 2
        "Referrer-Policy": "same-origin",
    }
    if settings.public_url.lower().startswith("https://"):
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


class SecurityHeaders:
    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app, self.headers = app, headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)
