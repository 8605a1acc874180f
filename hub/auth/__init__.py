"""Who is calling: operators authenticated by access token or request signature, and the administrator.

The principal, never a header the caller chooses, decides the tenant (operator_id) of every call.
"""
