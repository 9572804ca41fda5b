import { z } from "zod";
import { GROUP, MODEL_NAME_RULES, KIND, PLURAL, VERSION, waveletModelSpec, waveletModelStatus } from "./waveletmodel.js";

/**
 * The WaveletModel CustomResourceDefinition, generated from the zod schemas so the API
 * server validates exactly what the operator's types say. `npm run crd -w operator`
 * rewrites crds/waveletmodel.yaml; a test fails when the file is stale.
 */

type Json = { [key: string]: unknown };

/** zod's JSON Schema → a Kubernetes structural schema (no $schema, no additionalProperties: false). */
function structural(schema: z.ZodType): Json {
  const json = z.toJSONSchema(schema, { io: "input", target: "openapi-3.0", unrepresentable: "throw" }) as Json;
  const clean = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(clean);
    if (!node || typeof node !== "object") return node;
    const out: Json = {};
    for (const [key, value] of Object.entries(node as Json)) {
      if (key === "$schema" || key === "id") continue;
      if (key === "additionalProperties" && value === false) continue;
      out[key] = clean(value);
    }
    // Free-form objects are stated by this flag; an untyped additionalProperties is invalid.
    if (out["x-kubernetes-preserve-unknown-fields"]) delete out.additionalProperties;
    // Structural schemas state int-or-string by this flag alone.
    if (out["x-kubernetes-int-or-string"]) {
      delete out.type;
      delete out.anyOf;
    }
    return out;
  };
  return clean(json) as Json;
}

export function waveletModelCrd(): Json {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${PLURAL}.${GROUP}` },
    spec: {
      group: GROUP,
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: "waveletmodel", shortNames: ["wm"], categories: ["wavelet"] },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: "Active", type: "string", jsonPath: ".status.activeColor", description: "colour serving traffic" },
            { name: "Preview", type: "string", jsonPath: ".status.previewColor", description: "colour the preview Service reaches", priority: 1 },
            { name: "Rollout", type: "string", jsonPath: ".status.rollout.phase", description: "phase of the rollout under way, if any" },
            { name: "Bundle", type: "string", jsonPath: ".status.activeBundle.version", description: "bundle version being served" },
            { name: "Ready", type: "integer", jsonPath: ".status.readyReplicas" },
            { name: "Phase", type: "string", jsonPath: ".status.phase" },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: "A model bundle served by the wavelet inference server, rolled out blue-green.",
              required: ["spec"],
              "x-kubernetes-validations": MODEL_NAME_RULES,
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: structural(waveletModelSpec),
                status: structural(waveletModelStatus),
              },
            },
          },
        },
      ],
    },
  };
}
