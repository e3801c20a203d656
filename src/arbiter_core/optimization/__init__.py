"""Runtime optimization: metric storage, bottleneck detection, recommendations."""

from .monitor import MetricBatch, PerformanceMonitor

__all__ = ["MetricBatch", "PerformanceMonitor"]
