import { describe, expect, it } from "vitest";
import { fieldsFromSchema, initialValues, validateForm } from "./schemaForm";

// A schema as the SDK writes it with pydantic: Optional as anyOf-with-null, enums via $defs.
const schema = {
  type: "object",
  title: "etl-parameters",
  required: ["pages", "mode"],
  properties: {
    pages: { type: "integer", title: "Pages", minimum: 1, maximum: 10 },
    ratio: { anyOf: [{ type: "number", exclusiveMinimum: 0 }, { type: "null" }], title: "Ratio", default: null },
    mode: { $ref: "#/$defs/Mode" },
    dry_run: { type: "boolean", title: "Dry Run", default: false },
    label: { type: "string", title: "Label", maxLength: 5 },
    ids: { type: "array", items: { type: "integer" }, title: "Ids" },
    options: { type: "object", title: "Options" },
  },
  $defs: { Mode: { enum: ["fast", "safe"], title: "Mode", type: "string" } },
};

describe("fieldsFromSchema", () => {
  it("given a pydantic schema, when read, then each property becomes a typed field in order", () => {
    const fields = fieldsFromSchema(schema);
    expect(fields.map((field) => [field.name, field.kind, field.required])).toEqual([
      ["pages", "integer", true],
      ["ratio", "number", false],
      ["mode", "enum", true],
      ["dry_run", "boolean", false],
      ["label", "string", false],
      ["ids", "array", false],
      ["options", "json", false],
    ]);
    expect(fields[2]?.enumValues).toEqual(["fast", "safe"]);
    expect(fields[5]?.itemType).toBe("integer");
  });

  it("given a schema without properties, when read, then there are no fields", () => {
    expect(fieldsFromSchema({})).toEqual([]);
    expect(fieldsFromSchema(null)).toEqual([]);
  });
});

describe("validateForm", () => {
  const fields = fieldsFromSchema(schema);
  const valid = { pages: "3", ratio: "", mode: '"safe"', dry_run: true, label: "abc", ids: "[1, 2]", options: '{"a": 1}' };

  it("given valid inputs, when validated, then they become typed parameters and empty optionals are left out", () => {
    const result = validateForm(fields, valid);
    expect(result.errors).toEqual({});
    expect(result.parameters).toEqual({ pages: 3, mode: "safe", dry_run: true, label: "abc", ids: [1, 2], options: { a: 1 } });
  });

  it("given a missing required field, when validated, then it names the field", () => {
    const result = validateForm(fields, { ...valid, pages: "" });
    expect(result.errors.pages).toBe("Pages is required: fill it in.");
  });

  it("given wrong types, when validated, then each field says what it expects", () => {
    const result = validateForm(fields, { ...valid, pages: "2.5", ratio: "abc", ids: "[1, \"x\"]", options: "{nope" });
    expect(result.errors.pages).toMatch(/whole number/);
    expect(result.errors.ratio).toMatch(/must be a number/);
    expect(result.errors.ids).toMatch(/only integer values/);
    expect(result.errors.options).toMatch(/not valid JSON/);
  });

  it("given values out of range, when validated, then min, max and exclusive bounds are enforced", () => {
    expect(validateForm(fields, { ...valid, pages: "0" }).errors.pages).toBe("Pages must be at least 1.");
    expect(validateForm(fields, { ...valid, pages: "11" }).errors.pages).toBe("Pages must be at most 10.");
    expect(validateForm(fields, { ...valid, ratio: "0" }).errors.ratio).toBe("Ratio must be greater than 0.");
    expect(validateForm(fields, { ...valid, label: "toolong" }).errors.label).toMatch(/at most 5 characters/);
  });

  it("given a value outside the enum, when validated, then it is refused", () => {
    expect(validateForm(fields, { ...valid, mode: '"slow"' }).errors.mode).toMatch(/one of the listed choices/);
  });

  it("given an array field holding an object, when validated, then it asks for an array", () => {
    expect(validateForm(fields, { ...valid, ids: '{"a": 1}' }).errors.ids).toMatch(/JSON array/);
  });
});

describe("initialValues", () => {
  it("given deployment parameters and schema defaults, when the form opens, then deployment values win", () => {
    const fields = fieldsFromSchema(schema);
    const values = initialValues(fields, { pages: 4, ids: [7] });
    expect(values.pages).toBe("4");
    expect(values.ids).toBe("[7]");
    expect(values.dry_run).toBe(false);
    expect(values.ratio).toBe("");
  });

  it("given the initial values, when validated unchanged, then they round-trip to the same parameters", () => {
    const fields = fieldsFromSchema(schema);
    const values = initialValues(fields, { pages: 4, mode: "fast", options: { x: [1] } });
    expect(validateForm(fields, values).parameters).toEqual({ pages: 4, mode: "fast", dry_run: false, options: { x: [1] } });
  });
});
