"""Payment routing: which channel takes a risk-approved payment, and why.

The decision is pure logic over a policy written as data (``policy``, loaded from TOML by
``policy_file``), the channels' live service metrics (``health``) and their daily usage
(``quotas``); ``decision.route_payment`` gives the same decision for the same inputs, so a
replay routes every payment as before.
"""
