"""Every model of every package, imported in one place so that one metadata (and one Alembic
history) covers them all."""

from astrocloud.cloud import models as cloud_models  # noqa: F401
from astrocloud.core.db import Base
from astrocloud.core.identity import models as identity_models  # noqa: F401
from astrocloud.core.jobs import models as jobs_models  # noqa: F401
from astrocloud.core.security import models as security_models  # noqa: F401
from astrocloud.core.storage import models as storage_models  # noqa: F401
from astrocloud.core.usage import models as usage_models  # noqa: F401
from astrocloud.data.archive import models as archive_models  # noqa: F401
from astrocloud.data.catalogs import models as catalog_models  # noqa: F401
from astrocloud.data.vo import models as vo_models  # noqa: F401
from astrocloud.observation import models as observation_models  # noqa: F401

metadata = Base.metadata
