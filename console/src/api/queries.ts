// Query keys and fetchers shared by several pages (TanStack Query caches by key).

import { apiGet, seg } from "./client";
import type { Deployment, DeploymentSummary, Page, Pool } from "./types";

export const deploymentSummariesQuery = {
  queryKey: ["stats", "deployments"],
  queryFn: () => apiGet<DeploymentSummary[]>("/stats/deployments"),
};

export const poolsQuery = {
  queryKey: ["pools"],
  queryFn: () => apiGet<Page<Pool>>("/pools", { limit: 200 }),
};

export function poolQuery(name: string) {
  return { queryKey: ["pool", name], queryFn: () => apiGet<Pool>(`/pools/${seg(name)}`) };
}

export function deploymentQuery(flow: string, name: string) {
  return {
    queryKey: ["deployment", flow, name],
    queryFn: () => apiGet<Deployment>(`/deployments/${seg(flow)}/${seg(name)}`),
  };
}

/** Deployment id -> "flow/name", for tables of runs (one page of up to 200 deployments). */
export const deploymentNamesQuery = {
  queryKey: ["deployment-names"],
  queryFn: async () => {
    const page = await apiGet<Page<Deployment>>("/deployments", { limit: 200 });
    return new Map(page.items.map((deployment) => [deployment.id, `${deployment.flow_name}/${deployment.name}`]));
  },
  staleTime: 60_000,
};
