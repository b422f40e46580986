"""Errors of peers, their trust lists and the calls between instances.

A refused peer request says what was wrong with its form precisely (a
header missing, addressed to another region, too old, seen before) and
nothing about a bad signature beyond that it does not verify. Messages name
regions and keys, never a person or a document.
"""

from __future__ import annotations

from healthcode.errors import HealthcodeError


class RegionsError(HealthcodeError):
    """The root of the errors about other regions."""

    code = "regions_error"


class PeerConfigurationError(RegionsError):
    """A peer card, a peer file or this instance's own region is not usable."""

    code = "peer_configuration_error"


class PeerNotConfigured(RegionsError):
    """An official asked about a region that is not a peer of this instance."""

    code = "peer_not_configured"


class UnknownPeer(RegionsError):
    """A request is signed for a region that is not a peer here."""

    code = "unknown_peer"


class PeerUnauthenticated(RegionsError):
    """A peer request's headers, digest or signature do not hold."""

    code = "peer_unauthenticated"


class StaleRequest(PeerUnauthenticated):
    """A peer request's timestamp is too far from this instance's clock."""

    code = "stale_request"


class ReplayedRequest(PeerUnauthenticated):
    """A peer request's nonce was seen before."""

    code = "replayed_request"


class PeerUnreachable(RegionsError):
    """The peer did not answer in time, or could not be reached at all."""

    code = "peer_unreachable"


class PeerRefused(RegionsError):
    """The peer answered with a refusal; its code and message are relayed."""

    code = "peer_refused"


class InvalidPeerAnswer(RegionsError):
    """The peer's answer is unsigned, signed by a key it does not list, or malformed."""

    code = "invalid_peer_answer"
