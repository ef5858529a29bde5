// Routing model -> nginx files. Mustache lays the model out; the model has already validated
// every value, and nginxValue() quotes each one again as a single nginx token: mustache's HTML
// escaping is replaced, never bypassed (templates may not use {{{ }}} or {{& }}).

import { readFileSync } from 'node:fs';
import Mustache from 'mustache';
import type { Location, RoutingModel, Server } from './model.ts';
import { MAIN_FILE, UPSTREAMS_FILE } from './translate.ts';
import { nginxValue } from './validate.ts';

const TEMPLATE_DIR = new URL('../nginx/', import.meta.url);

function template(name: string): string {
  const text = readFileSync(new URL(name, TEMPLATE_DIR), 'utf8');
  if (/\{\{\s*[{&]/.test(text)) throw new Error(`template ${name} uses unescaped interpolation, which is forbidden`);
  return text;
}

const templates = {
  main: template('main.conf.mustache'),
  host: template('host.conf.mustache'),
  upstreams: template('upstreams.conf.mustache'),
  server: template('server.conf.mustache'),
};

const config = { escape: nginxValue };

function render(tpl: string, view: object): string {
  return Mustache.render(tpl, view, { server: templates.server }, config);
}

function locationView(model: RoutingModel, l: Location) {
  // "namespace/name" and "namespace/service:port", built by translate from validated names.
  const [namespace = '', ingressName = ''] = l.ingress.split('/');
  const serviceName = l.service.split('/')[1]?.split(':')[0] ?? '';
  return {
    namespace,
    ingressName,
    serviceName,
    exact: l.match === 'exact',
    path: l.path,
    pathType: l.route.pathType,
    routePath: l.route.path,
    ingress: l.ingress,
    service: l.service,
    proxyPass: l.action.kind === 'proxy' ? `http://${l.action.upstream}` : '',
    unavailable: l.action.kind === 'unavailable' ? l.action.reason : '',
    notFound: l.action.kind === 'notFound',
    // `$host`: the request's host, lowercased and without a port; nginx interpolates the variables.
    sslRedirect: l.sslRedirect && model.https ? `https://$host${model.https.redirectPort === 443 ? '' : `:${model.https.redirectPort}`}$request_uri` : '',
  };
}

function serverView(model: RoutingModel, s: Server) {
  const https = model.https;
  return {
    isDefault: s.host === null,
    https: https !== null,
    accessLog: model.accessLog ?? '',
    httpPort: model.httpPort,
    ipv6: model.ipv6,
    serverName: s.serverName,
    ingresses: s.ingresses,
    locations: s.locations.map((l) => locationView(model, l)),
    tls:
      s.tls && https
        ? {
            httpsPort: https.port,
            http2Listen: https.http2 === 'listen',
            http2Directive: https.http2 === 'directive',
            certPath: s.tls.certPath,
            certDefault: s.tls.certPath === model.defaultServer.tls?.certPath,
            certSecret: s.tls.secret ?? '',
            certIngress: s.tls.ingress ?? '',
          }
        : null,
  };
}

/** The complete set of files this model needs, by file name. Same model, same bytes. */
export function renderModel(model: RoutingModel): Map<string, string> {
  const files = new Map<string, string>();
  files.set(
    MAIN_FILE,
    render(templates.main, { serverNamesHash: model.serverNamesHash, https: model.https, defaultServer: serverView(model, model.defaultServer) }),
  );
  files.set(UPSTREAMS_FILE, render(templates.upstreams, { upstreams: model.upstreams }));
  for (const s of model.servers) files.set(s.file, render(templates.host, serverView(model, s)));
  return files;
}
