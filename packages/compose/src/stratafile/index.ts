export type {
  ArgInstruction,
  BootstrapInstruction,
  BuildchrootInstruction,
  CopyFrom,
  CopyHeredoc,
  CopyInstruction,
  DebuildInstruction,
  EnvInstruction,
  ExcludeInstruction,
  FeatureInstruction,
  FromInstruction,
  FromRefKind,
  InstallInstruction,
  Instruction,
  InstructionKind,
  LabelInstruction,
  Location,
  RemoveInstruction,
  RunInstruction,
  SecretMount,
  SourcesInstruction,
  Stage,
  Stratafile,
  UpgradeInstruction,
} from './ast';
export { INSTRUCTIONS, LAYER_INSTRUCTIONS } from './ast';
export { quoteWord } from './lexer';
export { parseStageHeads, parseStratafile } from './parser';
export type { ParseOptions, StageHead } from './parser';
