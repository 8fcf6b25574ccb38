"""The party runtime: identity, the boundary, the visibility log, the gRPC
transport and the roles. One party = one PartyRuntime, hosted by a Ray actor
(parties.actor) or, in tests, in process."""
