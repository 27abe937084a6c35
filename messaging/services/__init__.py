"""Writes of the messaging domain, by sub-domain.

- ``inbound``: what Meta's webhooks tell us (messages, edits, unsends, reactions, reads,
  comments, thread ownership) and the contact profile refresh;
- ``common``: helpers shared by inbound and outbound (text sanitation, contact and
  conversation upserts, giving an outbound message its Meta id).
"""
