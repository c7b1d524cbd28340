"""Every table of the platform. Importing this package registers them all on ``Base``."""

from switchyard.db.models.base import Base
from switchyard.db.models.coupons import Claim, Coupon  # noqa: F401  (registers the tables)
from switchyard.db.models.jobs import (  # noqa: F401  (registers the tables)
    Job,
    JobAttempt,
    JobRateLimit,
    JobSchedule,
    LeaderLease,
    ScheduleRun,
)
from switchyard.db.models.logs import HealthPing, LogEntry  # noqa: F401  (registers the tables)
from switchyard.db.models.outbox import OutboxEvent, ProcessedEvent
from switchyard.db.models.products import Product
from switchyard.db.models.targets import (  # noqa: F401  (registers the tables)
    CheckerReplica,
    CheckerShard,
    Target,
    TargetCheck,
)
from switchyard.db.models.users import User

__all__ = ["Base", "OutboxEvent", "ProcessedEvent", "Product", "User"]
