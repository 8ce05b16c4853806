"""The published pruning methods, written against the same public API as any user's method
(`prunebench.methods`) and registered through the `prunebench.methods` entry-point group."""
