"""A faithful local simulator of Meta's Graph API for Instagram messaging.

Run it with `python -m integrations.meta.sandbox serve`, or in tests with
`integrations.meta.sandbox.testing.running_sandbox()`. See README.md.
"""

from .core import Sandbox
from .delivery import meta_json, signature_256
from .service import SandboxService

__all__ = ["Sandbox", "SandboxService", "meta_json", "signature_256"]
