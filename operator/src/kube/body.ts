/**
 * Reading what a pod answers. A pod runs a tenant's image and one operator serves every
 * model, so no answer may cost it more than the limit of memory, whatever it claims.
 */

export class BodyTooLarge extends Error {
  override name = "BodyTooLarge";
}

/** The body as text, reading no more than `limit` bytes: a longer one is cut off (and the connection with it). */
export async function readBody(res: Response, limit: number): Promise<string> {
  const length = Number(res.headers.get("content-length") ?? NaN);
  if (length > limit) {
    await res.body?.cancel();
    throw new BodyTooLarge(`answer of ${length} bytes, more than the ${limit} read`);
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new BodyTooLarge(`answer longer than the ${limit} bytes read`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}
