"""The one place for conventions: rotations, cameras, crops, frames (metres, radians, REP-103)."""
