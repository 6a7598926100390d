{{/*
Where the chart's named templates live (one file per concern; templates/*.yaml are one per component
and kind and only assemble these):

  _names.tpl       object names: fullname, one name helper per component, service accounts, PVC claims
  _labels.tpl      labels and object metadata (selector labels stable across upgrades)
  _broker.tpl      the broker as clients see it: host, port, vhost, user/password Secrets, BROKER_URL
  _env.tpl         the taskqueue containers' environment (broker, Celery, per-component settings)
  _pod.tpl         images, shared pod spec, scheduling, container base, /tmp, probes, worker shutdown
  _secrets.tpl     generated credentials: kept across upgrades, Flower's auth Secret, the hook's plan
  _rabbitmq.tpl    the bundled broker: clustering, Erlang cookie Secret, rabbitmq.conf, plugins
  _extensions.tpl  the user's extension points (extra containers, volumes, envFrom, lifecycle)
  _metrics.tpl     what every ServiceMonitor endpoint shares
  _validate.tpl    every rule the schema cannot express; all problems reported by one fail

Helper names are celery-rabbitmq.<name> or celery-rabbitmq.<component>.<name>.
*/}}
