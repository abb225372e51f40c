"""ApiRateLimit: Envoy Gateway BackendTrafficPolicy that rate-limits the API's HTTPRoute.

Contract (seed "Rate limiting", platform-facts §12): BackendTrafficPolicy ``{release}-api-rate-limit``
targets HTTPRoute ``{release}-api`` with a Local limit of 1,000 requests per minute
(``edge.rateLimit``). A local limit is counted by each Envoy replica on its own. The deprecated
``rateLimit.type`` field is not written: Envoy Gateway v1.9 reads ``rateLimit.local`` directly and marks
deprecated fields with a warning condition.
"""

from __future__ import annotations

from constructs.api_objects import Component, Scope, api_object
from constructs.platform import Props, Release
from tiers.models import GATEWAY_API, EdgeRateLimit


class ApiRateLimitProps(Props):
    release: Release
    values: EdgeRateLimit
    #: Name of the API's HTTPRoute (GatewayRoutes.api_route).
    route: str


class ApiRateLimit(Component):
    """Outputs: ``name``."""

    def __init__(self, scope: Scope, id: str, *, props: ApiRateLimitProps) -> None:
        super().__init__(scope, id)
        from imports.io.envoyproxy import gateway as eg  # large module: loaded on use

        rel, v = props.release, props.values
        self.name = rel.name("api-rate-limit")
        api_object(
            eg.BackendTrafficPolicy,
            self,
            "Policy",
            metadata=rel.api_metadata(self.name, "api", "api"),
            spec=eg.BackendTrafficPolicySpec(
                target_refs=[
                    eg.BackendTrafficPolicySpecTargetRefs(group=GATEWAY_API, kind="HTTPRoute", name=props.route)
                ],
                rate_limit=eg.BackendTrafficPolicySpecRateLimit(
                    local=eg.BackendTrafficPolicySpecRateLimitLocal(
                        rules=[
                            eg.BackendTrafficPolicySpecRateLimitLocalRules(
                                limit=eg.BackendTrafficPolicySpecRateLimitLocalRulesLimit(
                                    requests=v.requests,
                                    unit=eg.BackendTrafficPolicySpecRateLimitLocalRulesLimitUnit[v.unit.upper()],
                                )
                            )
                        ]
                    )
                ),
            ),
        )
