/**
 * deploy/k8s: valid against the Kubernetes API schemas (kubeconform, offline: scripts/kubeconform.sh),
 * and consistent with what the server reads and serves: env names, ports, probe routes.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { HTTP_ROUTE_ROLES } from "../../server/src/api/auth.ts";
import { CONFIG_ENV_VARS, loadConfig } from "../../server/src/config.ts";
import { startCoordinator, type TestCoordinator } from "../helpers/coordinator.ts";

const DIR = "deploy/k8s";
// First run on a machine builds kubeconform and fetches the schemas (about a minute).
const KUBECONFORM_TIMEOUT_MS = 300_000;

interface K8sObject {
  kind: string;
  metadata: { name: string };
  [key: string]: unknown;
}
interface Probe {
  httpGet: { path: string; port: string | number };
}
interface Container {
  name: string;
  ports: { name: string; containerPort: number }[];
  env: { name: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  envFrom: { configMapRef: { name: string } }[];
  readinessProbe: Probe;
  livenessProbe: Probe;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: Record<string, unknown>;
}
interface Deployment extends K8sObject {
  spec: { replicas: number; template: { spec: { containers: Container[]; securityContext: Record<string, unknown> } } };
}

function kubeconform(files: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile("bash", ["scripts/kubeconform.sh", ...files], { timeout: KUBECONFORM_TIMEOUT_MS }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, output: stdout + stderr });
    });
  });
}

const manifestFiles = readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
  .map((f) => join(DIR, f));
const objects: K8sObject[] = manifestFiles.flatMap((f) => parseAllDocuments(readFileSync(f, "utf8")).map((d) => d.toJS() as K8sObject));
const one = <T extends K8sObject>(kind: string): T => {
  const found = objects.filter((o) => o.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0] as T;
};

describe("deploy/k8s manifests", () => {
  it("are valid against the Kubernetes schemas (kubeconform -strict)", { timeout: KUBECONFORM_TIMEOUT_MS }, async () => {
    const { code, output } = await kubeconform(manifestFiles);
    expect(output).toContain(`${objects.length} resources found in ${manifestFiles.length} files - Valid: ${objects.length}, Invalid: 0, Errors: 0`);
    expect(code).toBe(0);
  });

  it("kubeconform rejects a field Kubernetes does not know (the check is not vacuous)", { timeout: KUBECONFORM_TIMEOUT_MS }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "dtx-k8s-"));
    try {
      const bad = readFileSync(join(DIR, "deployment.yaml"), "utf8").replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: true\n            readOnlyRootFileSystem: true");
      writeFileSync(join(dir, "deployment.yaml"), bad);
      const { code, output } = await kubeconform([join(dir, "deployment.yaml")]);
      expect(code).toBe(1);
      expect(output).toContain("additional properties 'readOnlyRootFileSystem' not allowed");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("kustomization.yaml lists every manifest but the Secret example", () => {
    const k = parseAllDocuments(readFileSync(join(DIR, "kustomization.yaml"), "utf8"))[0]?.toJS() as { resources: string[] };
    const expected = manifestFiles.map((f) => f.slice(DIR.length + 1)).filter((f) => f !== "secret.example.yaml");
    expect([...k.resources].sort()).toEqual(expected.sort());
  });

  it("run two non-root replicas with requests, limits, a read-only root and a disruption budget", () => {
    const d = one<Deployment>("Deployment");
    expect(d.spec.replicas).toBe(2);
    const pod = d.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 });
    const [c] = pod.containers;
    expect(c?.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    expect(Object.keys(c?.resources.requests ?? {}).sort()).toEqual(["cpu", "memory"]);
    expect(Object.keys(c?.resources.limits ?? {}).sort()).toEqual(["cpu", "memory"]);
    expect(one<K8sObject & { spec: { minAvailable: number } }>("PodDisruptionBudget").spec.minAvailable).toBe(1);
  });

  it("set only env names the server reads, and a config it accepts (store URL from the Secret)", () => {
    const d = one<Deployment>("Deployment");
    const [c] = d.spec.template.spec.containers;
    const cm = one<K8sObject & { data: Record<string, string> }>("ConfigMap");
    expect(c?.envFrom.map((e) => e.configMapRef.name)).toEqual([cm.metadata.name]);
    const names = [...Object.keys(cm.data), ...(c?.env ?? []).map((e) => e.name)];
    expect(names.filter((n) => !CONFIG_ENV_VARS.includes(n))).toEqual([]);

    const url = c?.env.find((e) => e.name === "DTX_STORE_URL")?.valueFrom?.secretKeyRef;
    const secret = one<K8sObject & { stringData: Record<string, string> }>("Secret");
    expect(url).toEqual({ name: secret.metadata.name, key: "url" });
    const config = loadConfig({ ...cm.data, DTX_STORE_URL: secret.stringData["url"], NODE_ENV: "production" }, []);
    expect(config.store.driver).toBe("postgres");
    expect(config.env).toBe("production");
    expect(config.testControl).toBe(false);

    const ports = Object.fromEntries((c?.ports ?? []).map((p) => [p.name, p.containerPort]));
    expect(ports).toEqual({ http: config.httpPort, grpc: config.grpcPort });
    const svc = one<K8sObject & { spec: { ports: { name: string; targetPort: string }[] } }>("Service");
    expect(svc.spec.ports.map((p) => p.targetPort).sort()).toEqual(Object.keys(ports).sort());
  });

  describe("probes", () => {
    let dtx: TestCoordinator;
    beforeAll(async () => {
      // With auth on: probes carry no token, so their routes must be open.
      dtx = await startCoordinator({ auth: { tokens: [{ name: "ops", sha256: "a".repeat(64), roles: ["admin"] }] } });
    });
    afterAll(() => dtx.stop());

    it("ask routes the server serves without a token: readiness the store-checking health, liveness ping", async () => {
      const [c] = one<Deployment>("Deployment").spec.template.spec.containers;
      expect(c?.readinessProbe.httpGet).toEqual({ path: "/api/dtx/health", port: "http" });
      expect(c?.livenessProbe.httpGet).toEqual({ path: "/api/ping", port: "http" });
      for (const probe of [c?.readinessProbe, c?.livenessProbe]) {
        const path = probe?.httpGet.path ?? "";
        expect(HTTP_ROUTE_ROLES[path]).toBe("open");
        expect((await fetch(`${dtx.url}${path}`)).status).toBe(200);
      }
    });
  });
});
