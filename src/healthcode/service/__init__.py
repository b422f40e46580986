"""The HTTP service over the domain packages; see :func:`create_app`."""

from healthcode.service.app import create_app, make_app

__all__ = ["create_app", "make_app"]
