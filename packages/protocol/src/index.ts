export * from './constants.ts';
export * from './handshake.ts';
export * from './requests.ts';
export * from './replies.ts';
