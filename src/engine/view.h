/* Publishing the layer views that classification reads (see filter_index.h). */
#ifndef OPENWFP_ENGINE_VIEW_H
#define OPENWFP_ENGINE_VIEW_H

#include "engine.h"
#include "filter_index.h"

/* With e->mu held, outside read sections: rebuilds the view of every layer
 * the open transaction changed, publishes them, waits for readers of the old
 * views to leave and frees those. STATUS_INSUFFICIENT_RESOURCES leaves every
 * published view as it was. */
NTSTATUS owfp_views_publish(struct owfp_engine *e);

/* The published view of a filterable layer, inside a read section. */
const struct owfp_layer_view *owfp_view_current(const struct owfp_engine *e, uint16_t layer_id);

void owfp_views_destroy(struct owfp_engine *e);

#endif
