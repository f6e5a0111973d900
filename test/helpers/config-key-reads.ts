import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/** One configuration key as declared in a key set: `NODE_KEYS.keepaliveTime (KEEPALIVE_TIME)`. */
export interface KeyDecl {
  readonly set: string;
  readonly field: string;
  readonly env: string;
  readonly file: string;
}

/**
 * Which declared config keys production code never reads. It type-checks the sources and
 * resolves every property read (`c.x`, `c['x']`, `const { x } = c`, a `Pick<NodeConfig,
 * 'x'>` parameter read inside a helper) to the key declaration it comes from, through
 * spreads (`...COMMON_KEYS`), `Omit`/`Pick` and `ConfigOf<>` (TypeScript links a mapped
 * property to the property it maps). So a key counts as read wherever the value travels
 * under its own name, and `Object.entries(keys)` (help text, /config_dump) does not count:
 * printing a setting is not using it.
 *
 * `keyFiles` holds the key sets (exported object literals whose properties are `key({...})`
 * calls or other key sets' properties); every other file in `files` is production code.
 */
export function unreadConfigKeys(files: readonly string[], isKeyFile: (file: string) => boolean): { keys: KeyDecl[]; unread: KeyDecl[] } {
  const program = ts.createProgram([...files], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    strict: true,
    esModuleInterop: true,
    resolveJsonModule: true,
    skipLibCheck: true,
    types: ['node'],
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const declared = new Map<ts.Node, KeyDecl>();
  const sources = program.getSourceFiles().filter((sf) => files.includes(path.resolve(sf.fileName)));

  for (const sf of sources.filter((s) => isKeyFile(path.resolve(s.fileName)))) {
    for (const stmt of sf.statements) {
      if (!ts.isVariableStatement(stmt)) continue;
      for (const d of stmt.declarationList.declarations) {
        const obj = d.initializer && unwrap(d.initializer);
        if (!obj || !ts.isObjectLiteralExpression(obj) || !ts.isIdentifier(d.name)) continue;
        for (const prop of obj.properties) {
          if (!ts.isPropertyAssignment(prop) || !ts.isIdentifier(prop.name)) continue;
          const env = envOf(prop.initializer, checker);
          if (env === null) continue;
          declared.set(prop, { set: d.name.text, field: prop.name.text, env, file: path.relative(process.cwd(), sf.fileName) });
        }
      }
    }
  }

  const read = new Set<ts.Node>();
  const mark = (sym: ts.Symbol | undefined): void => {
    if (!sym) return;
    for (const root of [sym, ...checker.getRootSymbols(sym)]) for (const decl of root.declarations ?? []) if (declared.has(decl)) read.add(decl);
  };
  for (const sf of sources.filter((s) => !isKeyFile(path.resolve(s.fileName)))) {
    const visit = (n: ts.Node): void => {
      if (ts.isPropertyAccessExpression(n)) mark(checker.getSymbolAtLocation(n.name));
      else if (ts.isElementAccessExpression(n) && ts.isStringLiteral(n.argumentExpression)) mark(checker.getSymbolAtLocation(n.argumentExpression));
      else if (ts.isBindingElement(n) && ts.isObjectBindingPattern(n.parent)) {
        const name = n.propertyName ?? n.name;
        if (ts.isIdentifier(name) || ts.isStringLiteral(name)) mark(checker.getTypeAtLocation(n.parent).getProperty(name.text));
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  const keys = [...declared.values()];
  return { keys, unread: [...declared.entries()].filter(([n]) => !read.has(n)).map(([, k]) => k) };
}

function unwrap(e: ts.Expression): ts.Expression {
  while (ts.isAsExpression(e) || ts.isSatisfiesExpression(e) || ts.isParenthesizedExpression(e)) e = e.expression;
  return e;
}

/** The env name of a key definition: `key({ env: 'X', … })`, or the key set property it reuses. */
function envOf(init: ts.Expression, checker: ts.TypeChecker): string | null {
  const e = unwrap(init);
  if (ts.isCallExpression(e) && e.arguments.length === 1) {
    const arg = unwrap(e.arguments[0] as ts.Expression);
    if (!ts.isObjectLiteralExpression(arg)) return null;
    for (const p of arg.properties) {
      if (ts.isPropertyAssignment(p) && ts.isIdentifier(p.name) && p.name.text === 'env' && ts.isStringLiteral(p.initializer)) return p.initializer.text;
    }
    return null;
  }
  if (ts.isPropertyAccessExpression(e)) {
    for (const decl of checker.getSymbolAtLocation(e.name)?.declarations ?? []) {
      if (ts.isPropertyAssignment(decl)) return envOf(decl.initializer, checker);
    }
  }
  return null;
}

/** Every .ts file under `dir`, absolute. */
export function tsFilesUnder(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => path.resolve(dir, f));
}
