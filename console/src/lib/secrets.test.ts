import { describe, expect, it } from "vitest";
import { MASK, maskSecrets } from "./secrets";

describe("maskSecrets", () => {
  it("given a $secret reference anywhere, when masked, then only it is replaced", () => {
    const masked = maskSecrets({ db: { url: { $secret: "db-url" }, pool: 5 }, list: [{ $secret: "k" }, 1] });
    expect(masked).toEqual({ db: { url: MASK, pool: 5 }, list: [MASK, 1] });
  });

  it("given keys naming secrets, when masked, then their values are hidden whatever their type", () => {
    const masked = maskSecrets({ password: "hunter2", api_token: 12, Client_Secret: { a: 1 }, apiKey: "k", user: "ann" });
    expect(masked).toEqual({ password: MASK, api_token: MASK, Client_Secret: MASK, apiKey: MASK, user: "ann" });
  });

  it("given a null secret-named value, when masked, then it stays null (nothing to hide)", () => {
    expect(maskSecrets({ token: null })).toEqual({ token: null });
  });

  it("given plain values, when masked, then they are unchanged and the input is not mutated", () => {
    const input = { rows: [{ id: 1 }], name: "x", secret: "s" };
    const masked = maskSecrets(input);
    expect(masked).toEqual({ rows: [{ id: 1 }], name: "x", secret: MASK });
    expect(input.secret).toBe("s");
  });
});
