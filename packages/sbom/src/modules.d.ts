declare module 'spdx-license-ids' {
  const ids: string[];
  export default ids;
}
declare module 'spdx-expression-parse' {
  function parse(expression: string): unknown;
  export default parse;
}
