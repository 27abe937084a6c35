"""Settings for benchmarks and drills: production settings plus a bench-only URLconf.

Everything else comes from the environment exactly as in production (see ``bench/stack.py``),
so what is measured is the production configuration.
"""

from config.settings.production import *  # noqa: F403

# The product's URLs plus `/bench/bare`, a view that does nothing, as a baseline.
ROOT_URLCONF = "bench.urls"
