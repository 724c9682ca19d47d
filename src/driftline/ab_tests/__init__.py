"""A/B tests decided on business outcomes: the plan, the sequential statistics, outcomes joined to arms, the verdict.
May import: config, errors, modeling, data, monitoring, registry, governance.
"""
