from rest_framework.routers import SimpleRouter

from webhooks.api import views

router = SimpleRouter(trailing_slash=False)
router.register("webhook-endpoints", views.CallbackEndpointViewSet, basename="webhook-endpoint")
router.register("webhook-deliveries", views.CallbackDeliveryViewSet, basename="webhook-delivery")

urlpatterns = router.urls
