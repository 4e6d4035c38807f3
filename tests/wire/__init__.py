"""Tests of tinycaffe.wire: codec, endpoints, pacing and loopback TCP."""
