// The part of js-yaml (no bundled types; @types/js-yaml not installed) that fast-yaml.ts uses.
declare module 'js-yaml' {
  interface TypeOptions {
    kind: 'scalar' | 'sequence' | 'mapping';
    resolve?: (data: string) => boolean;
    construct?: (data: string) => unknown;
  }
  class Type {
    constructor(tag: string, options: TypeOptions);
  }
  interface Schema {
    extend(types: { implicit?: Type[]; explicit?: Type[] }): Schema;
  }
  interface LoadOptions {
    schema?: Schema;
    filename?: string;
  }
  const FAILSAFE_SCHEMA: Schema;
  function loadAll(text: string, iterator?: undefined, options?: LoadOptions): unknown[];
  const jsYaml: { Type: typeof Type; FAILSAFE_SCHEMA: Schema; loadAll: typeof loadAll };
  export default jsYaml;
}
