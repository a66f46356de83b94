"""Model code. Importing this package registers the model builders in `vigc.registry.MODELS`."""

from vigc.models import builders as builders
