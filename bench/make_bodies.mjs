// Request bodies of the benchmark: the guide's single feature vector, and 1,000 distinct rows.
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2];
const features = [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
const samples = Array.from({ length: 1000 }, (_, i) => Array.from({ length: 10 }, (_, j) => Math.sin(i * 0.37 + j) * 0.8));
for (const model of ["xgboost", "ensemble"]) writeFileSync(join(out, `single-${model}.json`), JSON.stringify({ features, model_type: model }));
writeFileSync(join(out, "batch-ensemble.json"), JSON.stringify({ samples, model_type: "ensemble" }));
