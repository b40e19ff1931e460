// The five access rules as the API stores them: absent (admins only), ""
// (everyone) or an expression in the filter language.

export const RULES = ["listRule", "viewRule", "createRule", "updateRule", "deleteRule"] as const;
export type RuleName = (typeof RULES)[number];
export type Rules = Partial<Record<RuleName, string>>;

export const RULE_TITLES: Record<RuleName, string> = {
  listRule: "List", viewRule: "View", createRule: "Create", updateRule: "Update", deleteRule: "Delete",
};

export type RuleMode = "admins" | "everyone" | "expression";
export type RuleDraft = { mode: RuleMode; expr: string };

/** Drafts of `rules` (of the five unless `names` says otherwise) for the editor. */
export function draftRules<N extends string = RuleName>(
  rules: Partial<Record<N, string | null>>,
  names: readonly N[] = RULES as unknown as N[],
): Record<N, RuleDraft> {
  return Object.fromEntries(
    names.map((rule) => {
      const value = rules[rule] ?? undefined;
      const draft: RuleDraft =
        value === undefined ? { mode: "admins", expr: "" }
        : value === "" ? { mode: "everyone", expr: "" }
        : { mode: "expression", expr: value };
      return [rule, draft];
    }),
  ) as Record<N, RuleDraft>;
}

/** The rules `drafts` stand for, as the API takes them. */
export function rulesOf<N extends string = RuleName>(drafts: Record<N, RuleDraft>): Partial<Record<N, string>> {
  const rules: Partial<Record<N, string>> = {};
  for (const rule of Object.keys(drafts) as N[]) {
    const { mode, expr } = drafts[rule];
    if (mode === "everyone") rules[rule] = "";
    if (mode === "expression") rules[rule] = expr;
  }
  return rules;
}

/** "list, view" for the rules that let callers in, or "admins only". */
export function openRules(rules: Rules): string {
  const open = RULES.filter((rule) => rules[rule] !== undefined).map((rule) => RULE_TITLES[rule].toLowerCase());
  return open.length ? open.join(", ") : "admins only";
}
