/**
 * The layers of server/ and db/ (checked by test/unit/layers.test.ts, or by hand with
 * `npx depcruise --config .dependency-cruiser.cjs server db`).
 *
 * LAYERS lists the parts of the code from the bottom up: a folder (`server/queue/`, every file
 * in it) or a single file (`server/deps.ts`). A module may import from its own part and from
 * any part of a lower layer; never from a higher layer, nor from another part of its own
 * layer (parts of one layer stand side by side and know nothing of each other). So no two
 * parts can import each other in a circle, and the import graph has exactly these layers.
 * Type-only imports count like the others. Inside one part, no module cycle either.
 *
 * Adding an import the map forbids means deciding where the code belongs: move the shared
 * piece down (a type beside its store, an error class to server/lib/), pass a small interface
 * instead of a higher module, or, when the design really changes, edit the map here.
 */
const LAYERS = [
  ['db/', 'server/lib/', 'server/http-server.ts', 'server/manifest.ts'],
  [
    'server/config/',
    'server/metrics.ts',
    'server/cluster/',
    'server/keys/',
    'server/portal-directory.ts',
  ],
  ['server/config.ts'],
  ['server/bitrix/', 'server/secrets.ts'],
  ['server/deps.ts', 'server/rules/'],
  ['server/actions/', 'server/intake/', 'server/queue/', 'server/retention/'],
  ['server/install/', 'server/processing/'],
  ['server/alerts/', 'server/recovery/'],
  ['server/ui/', 'server/services.ts'],
  ['server/cli/', 'server/routes/'],
  ['server/start.ts'],
  ['server/main.ts'],
];

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** The path pattern of a part: a folder and everything in it, or one file. */
const pattern = (part) => (part.endsWith('/') ? `^${escape(part)}` : `^${escape(part)}$`);
const any = (parts) => `(${parts.map(pattern).join('|')})`;

const layerRules = LAYERS.flatMap((layer, i) =>
  layer.flatMap((part) => {
    const forbidden = [...layer.filter((p) => p !== part), ...LAYERS.slice(i + 1).flat()];
    if (forbidden.length === 0) return [];
    return {
      name: `layer:${part}`,
      comment: `${part} (layer ${i + 1} of ${LAYERS.length}) imports only itself and lower layers`,
      severity: 'error',
      from: { path: pattern(part) },
      to: { path: any(forbidden) },
    };
  }),
);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'Modules never import each other in a circle, not even through type imports.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'server-never-imports-test',
      severity: 'error',
      from: { path: '^(server|db)/' },
      to: { path: '^test/' },
    },
    {
      name: 'not-in-the-layer-map',
      comment: 'Every module of server/ and db/ belongs to a part of LAYERS.',
      severity: 'error',
      from: { path: '^(server|db)/.+\\.ts$', pathNot: any(LAYERS.flat()) },
      to: {},
    },
    ...layerRules,
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
  },
};
